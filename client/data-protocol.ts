/**
 * The data service's wire format (kernel/rpc/data.proto), shared by the client and the OSD.
 * Headers are protobuf, defined by data.proto; payload bytes are the frame's raw tail.
 */
import { ErrorCode, FastblockError } from '../kernel/errors.js';
import { loadProto } from '../kernel/rpc/proto.js';
import { WireReader, WireType, tag, varintSize, writeVarint } from '../kernel/rpc/protobuf-wire.js';
import { encodeUtf8 } from '../kernel/utf8.js';

/** The data service's method ids on the transport (one for client I/O: the op is in the header). */
export const DATA_METHOD_IO = 0x0200;
/** OSD to OSD: pull a PG's objects for recovery (services/osd/recovery.ts). */
export const DATA_METHOD_RECOVERY = 0x0201;
/** OSD to OSD: does a replica hold state for a PG (services/osd/pg-manager.ts). */
export const DATA_METHOD_PG_QUERY = 0x0202;

/**
 * WRITE_EXTENTS: several non-overlapping writes of one object in one request (the header's
 * `extents`, the bytes concatenated in the payload in the same order). A new op rather than a
 * WRITE with extents: an OSD that does not know it refuses it instead of writing the bytes as one
 * contiguous range.
 */
export const DataOp = { READ: 1, WRITE: 2, DISCARD: 3, WRITE_ZEROES: 4, WRITE_EXTENTS: 5 } as const;
export type DataOp = (typeof DataOp)[keyof typeof DataOp];

/**
 * DataRequest.flags bits (data.proto DataFlag): hints, so an OSD ignores the bits it does not know.
 * NOCACHE (WRITE, WRITE_EXTENTS): the client keeps these bytes in a cache of its own; the OSD need
 * not keep them in its read cache (it still updates blocks it holds).
 */
export const DataFlag = { NOCACHE: 1 } as const;

export const DataStatus = {
  OK: 0,
  NOT_LEADER: 1,
  STALE_EPOCH: 2,
  NO_SPACE: 3,
  TIMEOUT: 4,
  INVALID_ARGUMENT: 5,
  IO_ERROR: 6,
} as const;
export type DataStatus = (typeof DataStatus)[keyof typeof DataStatus];

export interface DataRequest {
  readonly op: DataOp;
  readonly pool: number;
  readonly pg: number;
  readonly object: string;
  readonly offset: number;
  readonly length: number;
  readonly epoch: number;
  /**
   * WRITE_EXTENTS only: offset0, length0, offset1, length1, ... inside the object, ascending and
   * not overlapping; the lengths add up to `length` (the payload). `offset` is unused then.
   */
  readonly extents?: readonly number[];
  /** DataFlag bits; absent (decoded: when 0) for none. */
  readonly flags?: number;
}

export interface DataReply {
  readonly status: DataStatus;
  /** Leader OSD id when status is NOT_LEADER and the server knows it. */
  readonly leaderHint?: number;
  readonly epoch: number;
  readonly message: string;
}

/** Larger I/Os are split by the client; the OSD refuses them. */
export const MAX_DATA_LENGTH = 4 * 1024 * 1024;
/** The most extents one WRITE_EXTENTS request carries. */
export const MAX_EXTENTS = 1024;

/** The parsed data.proto, for the OSD's other messages (recovery, peering). */
export const dataProto = loadProto('data.proto');

// DataRequest and DataReply travel with every I/O: they are written and read by hand
// (kernel/rpc/protobuf-wire.ts says why), field numbers as in data.proto. Fields holding their default
// value are left out, as proto3 does.
const REQUEST_OP = tag(1, WireType.VARINT);
const REQUEST_POOL = tag(2, WireType.VARINT);
const REQUEST_PG = tag(3, WireType.VARINT);
const REQUEST_OBJECT = tag(4, WireType.BYTES);
const REQUEST_OFFSET = tag(5, WireType.VARINT);
const REQUEST_LENGTH = tag(6, WireType.VARINT);
const REQUEST_EPOCH = tag(7, WireType.VARINT);
const REQUEST_EXTENTS = tag(8, WireType.BYTES);
/** Field 8 unpacked (one varint per key): proto3 parsers accept both forms of a repeated scalar. */
const REQUEST_EXTENT = tag(8, WireType.VARINT);
const REQUEST_FLAGS = tag(9, WireType.VARINT);
const REPLY_STATUS = tag(1, WireType.VARINT);
const REPLY_LEADER_HINT = tag(2, WireType.VARINT);
const REPLY_EPOCH = tag(3, WireType.VARINT);
const REPLY_MESSAGE = tag(4, WireType.BYTES);

const utf8Decoder = new TextDecoder();

/**
 * An object name as DataRequest field 4 (tag, length, UTF-8 bytes): computed once per object by
 * the client (client/object-ref.ts) and copied into each request header.
 */
export function encodeObjectField(name: string): Uint8Array {
  const bytes = encodeUtf8(name);
  const field = new Uint8Array(1 + varintSize(bytes.length) + bytes.length);
  field.set(bytes, writeVarint(field, writeVarint(field, 0, REQUEST_OBJECT), bytes.length));
  return field;
}

const varintField = (value: number): number => (value === 0 ? 0 : 1 + varintSize(value));

/** Writes fields 1 to 4 (op, pool, pg, the encoded object) at the start of `out`; returns where they end. */
function writeRequestHead(out: Uint8Array, op: DataOp, pool: number, pg: number, objectField: Uint8Array): number {
  let at = writeVarint(out, writeVarint(out, 0, REQUEST_OP), op);
  if (pool !== 0) at = writeVarint(out, writeVarint(out, at, REQUEST_POOL), pool);
  if (pg !== 0) at = writeVarint(out, writeVarint(out, at, REQUEST_PG), pg);
  out.set(objectField, at);
  return at + objectField.length;
}

/** A DataRequest header whose object is given as its encoded field (encodeObjectField); `flags` DataFlag bits. */
export function encodeRequestHeader(op: DataOp, pool: number, pg: number, objectField: Uint8Array, offset: number, length: number, epoch: number, flags = 0): Uint8Array {
  const size = 1 + varintSize(op) + varintField(pool) + varintField(pg) + objectField.length + varintField(offset) + varintField(length) + varintField(epoch) + varintField(flags);
  const out = Buffer.allocUnsafe(size);
  let at = writeRequestHead(out, op, pool, pg, objectField);
  if (offset !== 0) at = writeVarint(out, writeVarint(out, at, REQUEST_OFFSET), offset);
  if (length !== 0) at = writeVarint(out, writeVarint(out, at, REQUEST_LENGTH), length);
  if (epoch !== 0) at = writeVarint(out, writeVarint(out, at, REQUEST_EPOCH), epoch);
  if (flags !== 0) writeVarint(out, writeVarint(out, at, REQUEST_FLAGS), flags);
  return out;
}

/**
 * A WRITE_EXTENTS header: the fields of encodeRequestHeader (offset 0) followed by the packed
 * `extents` (offset0, length0, offset1, length1, ...). A function of its own so that the one-range
 * header, nearly every request, sizes nothing it does not carry.
 */
export function encodeExtentsRequestHeader(pool: number, pg: number, objectField: Uint8Array, length: number, epoch: number, extents: readonly number[], flags = 0): Uint8Array {
  let packed = 0;
  for (let i = 0; i < extents.length; i++) packed += varintSize(extents[i]);
  const size = 1 + varintSize(DataOp.WRITE_EXTENTS) + varintField(pool) + varintField(pg) + objectField.length + varintField(length) + varintField(epoch) + 1 + varintSize(packed) + packed + varintField(flags);
  const out = Buffer.allocUnsafe(size);
  let at = writeRequestHead(out, DataOp.WRITE_EXTENTS, pool, pg, objectField);
  if (length !== 0) at = writeVarint(out, writeVarint(out, at, REQUEST_LENGTH), length);
  if (epoch !== 0) at = writeVarint(out, writeVarint(out, at, REQUEST_EPOCH), epoch);
  at = writeVarint(out, writeVarint(out, at, REQUEST_EXTENTS), packed);
  for (let i = 0; i < extents.length; i++) at = writeVarint(out, at, extents[i]);
  if (flags !== 0) writeVarint(out, writeVarint(out, at, REQUEST_FLAGS), flags);
  return out;
}

export function encodeDataRequest(request: DataRequest): Uint8Array {
  if (request.extents !== undefined) {
    return encodeExtentsRequestHeader(request.pool, request.pg, encodeObjectField(request.object), request.length, request.epoch, request.extents, request.flags);
  }
  return encodeRequestHeader(request.op, request.pool, request.pg, encodeObjectField(request.object), request.offset, request.length, request.epoch, request.flags);
}

export function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (value && typeof value === 'object' && 'toNumber' in value) return (value as { toNumber(): number }).toNumber();
  return 0;
}

/** Decodes and validates a request header from outside; a bad one is a PROTOCOL error. */
export function decodeDataRequest(bytes: Uint8Array): DataRequest {
  const reader = new WireReader(bytes, 'data request header');
  let op = 0;
  let pool = 0;
  let pg = 0;
  let object = '';
  let offset = 0;
  let length = 0;
  let epoch = 0;
  let extents: number[] | undefined;
  let flags = 0;
  while (!reader.done) {
    const key = reader.varint();
    switch (key) {
      case REQUEST_EXTENTS: {
        const end = reader.delimitedEnd();
        extents ??= [];
        // Bounded before it is read: a header cannot make the server build a huge list.
        while (reader.at < end && extents.length <= 2 * MAX_EXTENTS) extents.push(reader.varint());
        if (reader.at > end) throw new FastblockError(ErrorCode.PROTOCOL, 'undecodable data request header: packed extents overrun their field', {});
        reader.at = end;
        break;
      }
      case REQUEST_EXTENT:
        extents ??= [];
        if (extents.length <= 2 * MAX_EXTENTS) extents.push(reader.varint());
        else reader.varint();
        break;
      case REQUEST_OP:
        op = reader.varint();
        break;
      case REQUEST_POOL:
        pool = reader.varint() >>> 0;
        break;
      case REQUEST_PG:
        pg = reader.varint() >>> 0;
        break;
      case REQUEST_OBJECT:
        object = utf8Decoder.decode(reader.bytesField());
        break;
      case REQUEST_OFFSET:
        offset = reader.varint();
        break;
      case REQUEST_LENGTH:
        length = reader.varint();
        break;
      case REQUEST_EPOCH:
        epoch = reader.varint();
        break;
      case REQUEST_FLAGS:
        // uint32: a longer varint is truncated, as protobuf does.
        flags = reader.varint() >>> 0;
        break;
      default:
        reader.skip(key & 7);
    }
  }
  if (op < DataOp.READ || op > DataOp.WRITE_EXTENTS) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `unknown data op ${op}`, { op });
  }
  if (object.length === 0 || length > MAX_DATA_LENGTH || !Number.isSafeInteger(offset)) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'data request out of bounds', { object, offset, length });
  }
  if (op === DataOp.WRITE_EXTENTS) {
    checkExtents(extents, length, object);
    return flags === 0 ? { op, pool, pg, object, offset, length, epoch, extents } : { op, pool, pg, object, offset, length, epoch, extents, flags };
  }
  if (extents !== undefined) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `extents are only for WRITE_EXTENTS, not op ${op}`, { op, object });
  return flags === 0 ? { op: op as DataOp, pool, pg, object, offset, length, epoch } : { op: op as DataOp, pool, pg, object, offset, length, epoch, flags };
}

/**
 * A WRITE_EXTENTS request's extents from outside: 1..MAX_EXTENTS pairs, each length positive,
 * ascending without overlap, safe integers, the lengths adding up to the request's length.
 */
function checkExtents(extents: readonly number[] | undefined, length: number, object: string): asserts extents is readonly number[] {
  const refuse = (why: string): never => {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `WRITE_EXTENTS: ${why}`, { object, length });
  };
  if (extents === undefined || extents.length === 0) refuse('no extents');
  if (extents!.length % 2 !== 0) refuse('an extent without its length');
  if (extents!.length > 2 * MAX_EXTENTS) refuse(`more than ${MAX_EXTENTS} extents`);
  let total = 0;
  let end = 0;
  for (let i = 0; i < extents!.length; i += 2) {
    const at = extents![i];
    const n = extents![i + 1];
    if (!Number.isSafeInteger(at) || !Number.isSafeInteger(n) || !Number.isSafeInteger(at + n)) refuse(`extent ${i / 2} is not a safe integer range`);
    if (n <= 0) refuse(`extent ${i / 2} is empty`);
    if (at < end) refuse(`extent ${i / 2} at ${at} overlaps or precedes the one before (ending at ${end})`);
    end = at + n;
    total += n;
  }
  if (total !== length) refuse(`extents hold ${total} bytes, the request says ${length}`);
}

export function encodeDataReply(reply: DataReply): Uint8Array {
  const hint = reply.leaderHint === undefined ? 0 : reply.leaderHint + 1;
  const message = reply.message.length === 0 ? undefined : encodeUtf8(reply.message);
  const messageBytes = message === undefined ? 0 : 1 + varintSize(message.length) + message.length;
  const out = Buffer.allocUnsafe(varintField(reply.status) + varintField(hint) + varintField(reply.epoch) + messageBytes);
  let at = 0;
  if (reply.status !== 0) at = writeVarint(out, writeVarint(out, at, REPLY_STATUS), reply.status);
  if (hint !== 0) at = writeVarint(out, writeVarint(out, at, REPLY_LEADER_HINT), hint);
  if (reply.epoch !== 0) at = writeVarint(out, writeVarint(out, at, REPLY_EPOCH), reply.epoch);
  if (message !== undefined) out.set(message, writeVarint(out, writeVarint(out, at, REPLY_MESSAGE), message.length));
  return out;
}

/** An OK reply with no leader hint and no message: what nearly every I/O gets back. */
const OK_REPLY: DataReply = Object.freeze({ status: DataStatus.OK, leaderHint: undefined, epoch: 0, message: '' });

/**
 * True when the reply header says OK and nothing else worth decoding: status absent or 0, plus
 * only single-byte-keyed varint fields (the epoch, a hint). Anything else answers false and the
 * caller decodes it in full (decodeDataReply), which also judges whether it is well formed. This
 * lets the common reply be read without allocating.
 */
export function dataReplyIsOk(bytes: Uint8Array): boolean {
  let at = 0;
  while (at < bytes.length) {
    const key = bytes[at++]!;
    if (key !== REPLY_STATUS && key !== REPLY_EPOCH && key !== REPLY_LEADER_HINT) return false;
    if (key === REPLY_STATUS && bytes[at] !== 0) return false;
    while (at < bytes.length && bytes[at]! >= 0x80) at++;
    if (at >= bytes.length) return false;
    at++;
  }
  return true;
}

export function decodeDataReply(bytes: Uint8Array): DataReply {
  // OK at epoch 0 encodes to nothing at all.
  if (bytes.length === 0) return OK_REPLY;
  const reader = new WireReader(bytes, 'data reply header');
  let status = 0;
  let hint = 0;
  let epoch = 0;
  let message = '';
  while (!reader.done) {
    const key = reader.varint();
    switch (key) {
      case REPLY_STATUS:
        status = reader.varint();
        break;
      case REPLY_LEADER_HINT:
        hint = reader.varint() >>> 0;
        break;
      case REPLY_EPOCH:
        epoch = reader.varint();
        break;
      case REPLY_MESSAGE:
        message = utf8Decoder.decode(reader.bytesField());
        break;
      default:
        reader.skip(key & 7);
    }
  }
  return { status: status as DataStatus, leaderHint: hint === 0 ? undefined : hint - 1, epoch, message };
}
