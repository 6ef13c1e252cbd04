/**
 * A PG's state-machine command as it sits in a raft entry: a mutation of one object's byte range.
 * Fixed little-endian header, then the object name, then (for WRITE) the bytes. Hand-laid rather
 * than protobuf because the entry is built once from the request and the bytes are copied once,
 * straight from the receive buffer into the entry that the log, the followers and the apply share.
 *
 *   u8 op | u8 0 | u16 nameLength | u32 length | f64 offset | name | data
 */
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { DataOp } from '../../client/data-protocol.js';
import { writeUtf8 } from '../../kernel/utf8.js';

const HEADER = 16;
const decoder = new TextDecoder();

export type MutatingOp = typeof DataOp.WRITE | typeof DataOp.DISCARD | typeof DataOp.WRITE_ZEROES;

export interface PgOp {
  readonly op: MutatingOp;
  readonly object: string;
  readonly offset: number;
  readonly length: number;
  /** WRITE only: a view into the entry. */
  readonly data?: Uint8Array;
}

export function encodePgOp(op: MutatingOp, object: string, offset: number, length: number, data?: Uint8Array): Uint8Array {
  // Sized first and encoded in place (kernel/utf8.ts): TextEncoder.encode allocates a buffer per
  // call, which cost ten times the encoding itself on the write path.
  const nameLength = Buffer.byteLength(object, 'utf8');
  // Every byte is written below, so the entry needs no zero-fill.
  const out = Buffer.allocUnsafeSlow(HEADER + nameLength + (data ? data.length : 0));
  out[0] = op;
  out[1] = 0;
  out.writeUInt16LE(nameLength, 2);
  out.writeUInt32LE(length, 4);
  out.writeDoubleLE(offset, 8);
  writeUtf8(object, out, HEADER);
  if (data) out.set(data, HEADER + nameLength);
  return out;
}

export function decodePgOp(bytes: Uint8Array): PgOp {
  if (bytes.length < HEADER) throw new FastblockError(ErrorCode.CORRUPT, 'PG op shorter than its header', { bytes: bytes.length });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const op = view.getUint8(0) as MutatingOp;
  const nameLength = view.getUint16(2, true);
  const length = view.getUint32(4, true);
  const offset = view.getFloat64(8, true);
  const object = decoder.decode(bytes.subarray(HEADER, HEADER + nameLength));
  if (op === DataOp.WRITE) {
    const data = bytes.subarray(HEADER + nameLength);
    if (data.length !== length) throw new FastblockError(ErrorCode.CORRUPT, 'PG write op length mismatch', { object, length, have: data.length });
    return { op, object, offset, length, data };
  }
  if (op !== DataOp.DISCARD && op !== DataOp.WRITE_ZEROES) throw new FastblockError(ErrorCode.CORRUPT, `unknown PG op ${op}`, { op });
  return { op, object, offset, length };
}
