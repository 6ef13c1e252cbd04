/**
 * NVMe completion status: Status Code Type (SCT) and Status Code (SC), plus Do Not Retry. The CQE's
 * 16-bit status field is P (bit 0, always 0 on fabrics) | SC << 1 | SCT << 9 | M << 14 | DNR << 15.
 */

export const StatusCodeType = {
  Generic: 0,
  CommandSpecific: 1,
  MediaError: 2,
  PathRelated: 3,
} as const;

/** Generic command status (SCT 0). */
export const GenericStatus = {
  Success: 0x00,
  InvalidOpcode: 0x01,
  InvalidField: 0x02,
  CommandIdConflict: 0x03,
  DataTransferError: 0x04,
  InternalError: 0x06,
  AbortRequested: 0x07,
  InvalidNamespaceOrFormat: 0x0b,
  CommandSequenceError: 0x0c,
  DataSglLengthInvalid: 0x0f,
  SglDescriptorTypeInvalid: 0x11,
  SglOffsetInvalid: 0x16,
  TransientTransportError: 0x22,
  LbaOutOfRange: 0x80,
  CapacityExceeded: 0x81,
  NamespaceNotReady: 0x82,
} as const;

/** Command specific status (SCT 1). */
export const CommandSpecificStatus = {
  AsyncEventLimitExceeded: 0x05,
  InvalidLogPage: 0x09,
  FeatureNotSaveable: 0x0d,
  FeatureNotChangeable: 0x0e,
  ConnectIncompatibleFormat: 0x80,
  ConnectControllerBusy: 0x81,
  ConnectInvalidParameters: 0x82,
  ConnectInvalidHost: 0x84,
} as const;

/** The status field of a CQE. */
export type Status = number;

export function status(sct: number, sc: number, dnr = true): Status {
  return ((sc & 0xff) << 1) | ((sct & 0x7) << 9) | (dnr ? 0x8000 : 0);
}

export const SUCCESS: Status = 0;

export const generic = (sc: number): Status => status(StatusCodeType.Generic, sc);
export const commandSpecific = (sc: number): Status => status(StatusCodeType.CommandSpecific, sc);

export function statusCodeType(value: Status): number {
  return (value >> 9) & 0x7;
}

export function statusCode(value: Status): number {
  return (value >> 1) & 0xff;
}

/**
 * A command failed with an NVMe status. Thrown inside command handlers and turned into the CQE by
 * the queue; it never escapes to the rest of the daemon.
 */
export class NvmeStatusError extends Error {
  constructor(
    readonly status: Status,
    message: string,
    /** CQE dword 0 to report with the failure (Connect's invalid parameter offset). */
    readonly dw0 = 0,
  ) {
    super(message);
    this.name = 'NvmeStatusError';
  }
}

export function fail(sc: number, message: string): never {
  throw new NvmeStatusError(generic(sc), message);
}
