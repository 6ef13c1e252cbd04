/**
 * A PG's state-machine command as it sits in a raft entry: a mutation of one object's byte range
 * (or, WRITE_EXTENTS, of several). Fixed little-endian header, then the object name, then (for
 * WRITE) the bytes. Hand-laid rather than protobuf because the entry is built once from the
 * request and the bytes are copied once, straight from the receive buffer into the entry that the
 * log, the followers and the apply share.
 *
 *   WRITE, DISCARD, WRITE_ZEROES:
 *     u8 op | u8 flags | u16 nameLength | u32 length | f64 offset | name | data (WRITE: `length` bytes)
 *   WRITE_EXTENTS:
 *     u8 op | u8 flags | u16 nameLength | u32 count | f64 length | name | count x (f64 offset | u32 length) | data
 *
 * `flags` (PgOpFlag bits) are hints that ride in the log, so whichever replica applies the entry as
 * leader (another after a leader change) knows them: NOCACHE (the request's DataFlag.NOCACHE: the
 * client caches these bytes), the leader does not keep a WRITE's bytes in its store's read cache.
 * Entries written before the byte had a meaning hold 0 there, and a decoder ignores bits it does
 * not know.
 *
 * A WRITE_EXTENTS entry's `count` (1..MAX_EXTENTS) extents are ascending and do not overlap; their
 * lengths (each > 0) add up to `length`, the data's bytes, which hold the extents' bytes in order.
 * The data service built it from a request it validated; a decode that finds otherwise is CORRUPT.
 */
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { DataFlag, DataOp, MAX_EXTENTS } from '../../client/data-protocol.js';
import { writeUtf8 } from '../../kernel/utf8.js';

const HEADER = 16;
/**
 * Entries up to SLAB_ENTRY_BYTES are carved from a shared slab (as the followers' entries are views
 * into one received message): a buffer of its own costs a malloc, an ArrayBuffer and its sweep
 * each, several times the carving. A slab lives while any entry of it does (in the raft log until
 * compaction), so it stays small.
 */
const SLAB_BYTES = 64 * 1024;
const SLAB_ENTRY_BYTES = 8 * 1024;
let slab = new ArrayBuffer(0);
let slabUsed = 0;

/** `bytes` for a new entry, every one of which the caller writes. */
function entryBuffer(bytes: number): Buffer {
  if (bytes > SLAB_ENTRY_BYTES) return Buffer.allocUnsafeSlow(bytes);
  if (slabUsed + bytes > slab.byteLength) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = Buffer.from(slab, slabUsed, bytes);
  // 8-byte aligned starts, as an allocation of its own would be.
  slabUsed += (bytes + 7) & ~7;
  return out;
}

/** Reads the op's f64 fields without a DataView per decode (one costs more than the rest of the decode). */
const F64 = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
function readF64(bytes: Uint8Array, at: number): number {
  if (!LITTLE_ENDIAN) return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat64(at, true);
  for (let i = 0; i < 8; i++) F64_BYTES[i] = bytes[at + i];
  return F64[0];
}
const readU16 = (bytes: Uint8Array, at: number): number => bytes[at] | (bytes[at + 1] << 8);
const readU32 = (bytes: Uint8Array, at: number): number => (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16)) + bytes[at + 3] * 0x1000000;
/** One WRITE_EXTENTS table entry: f64 offset, u32 length. */
const EXTENT = 12;
const decoder = new TextDecoder();

export type MutatingOp = typeof DataOp.WRITE | typeof DataOp.DISCARD | typeof DataOp.WRITE_ZEROES | typeof DataOp.WRITE_EXTENTS;

/** The entry's flags byte: DataFlag's bits, the same values (a request's flags go into it as they are). */
export const PgOpFlag = { NOCACHE: DataFlag.NOCACHE } as const;
/** The bits an entry carries: the ones known here (a request's other bits are not logged). */
const KNOWN_FLAGS = PgOpFlag.NOCACHE;

export interface PgOp {
  readonly op: MutatingOp;
  readonly object: string;
  /** WRITE_EXTENTS: the first extent's offset. */
  readonly offset: number;
  /** WRITE_EXTENTS: the bytes of all extents. */
  readonly length: number;
  /** WRITE and WRITE_EXTENTS: a view into the entry. */
  readonly data?: Uint8Array;
  /** WRITE_EXTENTS only: offset0, length0, offset1, length1, ... (the extents of `data`, in order). */
  readonly extents?: readonly number[];
  /** PgOpFlag bits; absent when 0. */
  readonly flags?: number;
}

/** `flags`: a request's DataFlag bits (those not known here are dropped). */
export function encodePgOp(op: typeof DataOp.WRITE | typeof DataOp.DISCARD | typeof DataOp.WRITE_ZEROES, object: string, offset: number, length: number, data?: Uint8Array, flags = 0): Uint8Array {
  // Sized first and encoded in place (kernel/utf8.ts): TextEncoder.encode allocates a buffer per
  // call, which cost ten times the encoding itself on the write path.
  const nameLength = Buffer.byteLength(object, 'utf8');
  // Every byte is written below, so the entry needs no zero-fill.
  const out = entryBuffer(HEADER + nameLength + (data ? data.length : 0));
  out[0] = op;
  out[1] = flags & KNOWN_FLAGS;
  out.writeUInt16LE(nameLength, 2);
  out.writeUInt32LE(length, 4);
  out.writeDoubleLE(offset, 8);
  writeUtf8(object, out, HEADER);
  if (data) out.set(data, HEADER + nameLength);
  return out;
}

/** A WRITE_EXTENTS entry: `extents` as the request's (offset, length pairs), `data` their bytes in order. */
export function encodePgExtentsOp(object: string, extents: readonly number[], data: Uint8Array, flags = 0): Uint8Array {
  const nameLength = Buffer.byteLength(object, 'utf8');
  const count = extents.length / 2;
  const table = HEADER + nameLength;
  const out = entryBuffer(table + count * EXTENT + data.length);
  out[0] = DataOp.WRITE_EXTENTS;
  out[1] = flags & KNOWN_FLAGS;
  out.writeUInt16LE(nameLength, 2);
  out.writeUInt32LE(count, 4);
  out.writeDoubleLE(data.length, 8);
  writeUtf8(object, out, HEADER);
  for (let i = 0; i < count; i++) {
    out.writeDoubleLE(extents[2 * i], table + i * EXTENT);
    out.writeUInt32LE(extents[2 * i + 1], table + i * EXTENT + 8);
  }
  out.set(data, table + count * EXTENT);
  return out;
}

export function decodePgOp(bytes: Uint8Array): PgOp {
  if (bytes.length < HEADER) throw new FastblockError(ErrorCode.CORRUPT, 'PG op shorter than its header', { bytes: bytes.length });
  const op = bytes[0] as MutatingOp;
  const flags = bytes[1] & KNOWN_FLAGS;
  const nameLength = readU16(bytes, 2);
  const length = readU32(bytes, 4);
  const offset = readF64(bytes, 8);
  if (HEADER + nameLength > bytes.length) throw new FastblockError(ErrorCode.CORRUPT, 'PG op name past its end', { nameLength, bytes: bytes.length });
  const object = decoder.decode(bytes.subarray(HEADER, HEADER + nameLength));
  if (op === DataOp.WRITE) {
    const data = bytes.subarray(HEADER + nameLength);
    if (data.length !== length) throw new FastblockError(ErrorCode.CORRUPT, 'PG write op length mismatch', { object, length, have: data.length });
    return flags === 0 ? { op, object, offset, length, data } : { op, object, offset, length, data, flags };
  }
  if (op === DataOp.WRITE_EXTENTS) return decodeExtents(bytes, object, HEADER + nameLength, length, offset, flags);
  if (op !== DataOp.DISCARD && op !== DataOp.WRITE_ZEROES) throw new FastblockError(ErrorCode.CORRUPT, `unknown PG op ${op}`, { op });
  return flags === 0 ? { op, object, offset, length } : { op, object, offset, length, flags };
}

/** The rest of a WRITE_EXTENTS entry: its `count` table entries at `table`, then `total` bytes of data. */
function decodeExtents(bytes: Uint8Array, object: string, table: number, count: number, total: number, flags: number): PgOp {
  const corrupt = (why: string): never => {
    throw new FastblockError(ErrorCode.CORRUPT, `PG write-extents op: ${why}`, { object, count, total });
  };
  if (count < 1 || count > MAX_EXTENTS) corrupt(`${count} extents`);
  const dataAt = table + count * EXTENT;
  if (dataAt > bytes.length) corrupt('extent table past the end');
  if (bytes.length - dataAt !== total) corrupt(`${bytes.length - dataAt} data bytes for ${total}`);
  const extents = new Array<number>(2 * count);
  let end = 0;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const at = readF64(bytes, table + i * EXTENT);
    const n = readU32(bytes, table + i * EXTENT + 8);
    if (!Number.isSafeInteger(at) || !Number.isSafeInteger(at + n)) corrupt(`extent ${i} at ${at}`);
    if (n === 0) corrupt(`extent ${i} is empty`);
    if (at < end) corrupt(`extent ${i} at ${at} overlaps or precedes the one before (ending at ${end})`);
    end = at + n;
    sum += n;
    extents[2 * i] = at;
    extents[2 * i + 1] = n;
  }
  if (sum !== total) corrupt(`extents hold ${sum} bytes`);
  const data = bytes.subarray(dataAt);
  return flags === 0 ? { op: DataOp.WRITE_EXTENTS, object, offset: extents[0], length: total, data, extents } : { op: DataOp.WRITE_EXTENTS, object, offset: extents[0], length: total, data, extents, flags };
}
