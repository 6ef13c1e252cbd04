/**
 * Log pages: error information, SMART / health, firmware slot, changed namespace list, commands
 * supported and effects, and the discovery log.
 */
import { Structure } from './structure.js';
import { AdminOpcode, IoOpcode } from './opcodes.js';

export const ERROR_ENTRY_LENGTH = 64;

export interface ErrorEntry {
  readonly count: number;
  readonly sqid: number;
  readonly cid: number;
  readonly status: number;
  readonly lba: number;
  readonly nsid: number;
}

/** Newest first, as the specification orders them; unused entries are zero (error count 0). */
export function errorLog(entries: readonly ErrorEntry[], capacity: number): Uint8Array {
  const s = new Structure(capacity * ERROR_ENTRY_LENGTH);
  entries.slice(0, capacity).forEach((e, i) => {
    const at = i * ERROR_ENTRY_LENGTH;
    s.u64(at, e.count).u16(at + 8, e.sqid).u16(at + 10, e.cid).u16(at + 12, e.status);
    s.u16(at + 14, 0xffff); // parameter error location: not reported
    s.u64(at + 16, e.lba).u32(at + 24, e.nsid);
    s.u8(at + 29, 3); // TRTYPE: TCP
  });
  return s.bytes;
}

export interface SmartInput {
  readonly dataUnitsRead: number;
  readonly dataUnitsWritten: number;
  readonly readCommands: number;
  readonly writeCommands: number;
  readonly powerOnHours: number;
  readonly mediaErrors: number;
  readonly errorLogEntries: number;
}

export function smartLog(input: SmartInput): Uint8Array {
  const s = new Structure(512);
  s.u8(0, 0); // no critical warning
  s.u16(1, 0); // composite temperature: no sensor, not reported
  s.u8(3, 100); // available spare: a volume has no spare pool to wear out
  s.u8(4, 10);
  s.u8(5, 0); // percentage used
  s.u128(32, input.dataUnitsRead).u128(48, input.dataUnitsWritten);
  s.u128(64, input.readCommands).u128(80, input.writeCommands);
  s.u128(112, 1); // power cycles: this process
  s.u128(128, input.powerOnHours);
  s.u128(160, input.mediaErrors).u128(176, input.errorLogEntries);
  return s.bytes;
}

export function firmwareSlotLog(revision: string): Uint8Array {
  return new Structure(512).u8(0, 1).ascii(8, 8, revision).bytes;
}

/** CSUPP for each supported opcode; LBCC (logical block content change) for the writing I/O commands. */
export function commandsSupportedLog(): Uint8Array {
  const s = new Structure(4096);
  const admin = [AdminOpcode.GetLogPage, AdminOpcode.Identify, AdminOpcode.Abort, AdminOpcode.SetFeatures, AdminOpcode.GetFeatures, AdminOpcode.AsyncEventRequest, AdminOpcode.KeepAlive];
  for (const op of admin) s.u32(op * 4, 0x1);
  s.u32(1024 + IoOpcode.Flush * 4, 0x1);
  s.u32(1024 + IoOpcode.Read * 4, 0x1);
  for (const op of [IoOpcode.Write, IoOpcode.WriteZeroes, IoOpcode.DatasetManagement]) s.u32(1024 + op * 4, 0x3);
  return s.bytes;
}

export interface DiscoveryRecord {
  readonly subtype: 2 | 3;
  readonly nqn: string;
  readonly address: string;
  readonly port: number;
  readonly portId: number;
}

const DISCOVERY_ENTRY_LENGTH = 1024;

/** Header (GENCTR, NUMREC, RECFMT) then one 1024-byte entry per record. */
export function discoveryLog(generation: number, records: readonly DiscoveryRecord[]): Uint8Array {
  const s = new Structure(DISCOVERY_ENTRY_LENGTH * (1 + records.length));
  s.u64(0, generation).u64(8, records.length).u16(16, 0);
  records.forEach((r, i) => {
    const at = DISCOVERY_ENTRY_LENGTH * (i + 1);
    s.u8(at, 3); // TRTYPE: TCP
    s.u8(at + 1, r.address.includes(':') ? 2 : 1); // ADRFAM: IPv6 or IPv4
    s.u8(at + 2, r.subtype);
    // TREQ: secure channel not required; SQ flow control may be disabled by the host.
    s.u8(at + 3, 0x02 | 0x04);
    s.u16(at + 4, r.portId);
    s.u16(at + 6, 0xffff); // dynamic controller model
    s.u16(at + 8, 32); // ASQSZ
    // TRSVCID and TRADDR NUL padded, as Linux nvmet fills them and nvme-cli expects.
    s.string(at + 32, 32, String(r.port));
    s.string(at + 256, 256, r.nqn);
    s.string(at + 512, 256, r.address);
    s.u8(at + 768, 0); // TSAS: no security
  });
  return s.bytes;
}

/** Entries of the Changed Namespace List; more changes than this are reported as 0xFFFFFFFF. */
export const CHANGED_NAMESPACE_LIST_ENTRIES = 1024;

/** Namespace ids in ascending order, zero-terminated; `overflow` when more changed than fit. */
export function changedNamespaceList(nsids: Iterable<number>, overflow: boolean): Uint8Array {
  const s = new Structure(CHANGED_NAMESPACE_LIST_ENTRIES * 4);
  if (overflow) return s.u32(0, 0xffffffff).bytes;
  [...nsids].sort((a, b) => a - b).slice(0, CHANGED_NAMESPACE_LIST_ENTRIES).forEach((nsid, i) => s.u32(i * 4, nsid));
  return s.bytes;
}
