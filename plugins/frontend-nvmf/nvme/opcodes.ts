/** Command opcodes and the numbers that select within them (CNS, log page ids, feature ids). */

export const AdminOpcode = {
  GetLogPage: 0x02,
  Identify: 0x06,
  Abort: 0x08,
  SetFeatures: 0x09,
  GetFeatures: 0x0a,
  AsyncEventRequest: 0x0c,
  KeepAlive: 0x18,
  Fabrics: 0x7f,
} as const;

export const IoOpcode = {
  Flush: 0x00,
  Write: 0x01,
  Read: 0x02,
  WriteZeroes: 0x08,
  DatasetManagement: 0x09,
} as const;

export const FabricsType = {
  PropertySet: 0x00,
  Connect: 0x01,
  PropertyGet: 0x04,
  Disconnect: 0x08,
} as const;

export const IdentifyCns = {
  Namespace: 0x00,
  Controller: 0x01,
  ActiveNamespaceList: 0x02,
  NamespaceDescriptors: 0x03,
  /** I/O command set specific controller data (NVM: size limits). */
  CommandSetController: 0x06,
  /** I/O command set specific namespace data. */
  CommandSetNamespace: 0x05,
  /** I/O command set independent namespace data. */
  IndependentNamespace: 0x08,
  /** I/O command set combinations the controller supports. */
  CommandSetCombinations: 0x1c,
} as const;

export const LogPage = {
  Error: 0x01,
  Smart: 0x02,
  FirmwareSlot: 0x03,
  ChangedNamespaceList: 0x04,
  CommandsSupported: 0x05,
  Discovery: 0x70,
} as const;

export const Feature = {
  Arbitration: 0x01,
  PowerManagement: 0x02,
  TemperatureThreshold: 0x04,
  ErrorRecovery: 0x05,
  VolatileWriteCache: 0x06,
  NumberOfQueues: 0x07,
  WriteAtomicity: 0x0a,
  AsyncEventConfig: 0x0b,
  KeepAliveTimer: 0x0f,
} as const;

/** Data direction, from the low two bits of an opcode (or of a Fabrics command type). */
export const DataDirection = { None: 0, HostToController: 1, ControllerToHost: 2, Bidirectional: 3 } as const;

export function dataDirection(opcode: number, fctype: number): number {
  return (opcode === AdminOpcode.Fabrics ? fctype : opcode) & 0x3;
}
