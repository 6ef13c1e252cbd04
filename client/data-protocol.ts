/**
 * The data service's wire format (kernel/rpc/data.proto), shared by the client and the OSD.
 * Headers are protobuf (reflection: the .proto stays the single source of truth and needs no
 * generated code in the tree); payload bytes are the frame's raw tail.
 */
import type protobuf from 'protobufjs';
import { ErrorCode, FastblockError } from '../kernel/errors.js';
import { loadProto } from '../kernel/rpc/proto.js';

/** The data service's method ids on the transport (one for client I/O: the op is in the header). */
export const DATA_METHOD_IO = 0x0200;
/** OSD to OSD: pull a PG's objects for recovery (services/osd/recovery.ts). */
export const DATA_METHOD_RECOVERY = 0x0201;
/** OSD to OSD: does a replica hold state for a PG (services/osd/pg-manager.ts). */
export const DATA_METHOD_PG_QUERY = 0x0202;

export const DataOp = { READ: 1, WRITE: 2, DISCARD: 3, WRITE_ZEROES: 4 } as const;
export type DataOp = (typeof DataOp)[keyof typeof DataOp];

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

/** The parsed data.proto, for the OSD's other messages (recovery, peering). */
export const dataProto = loadProto('data.proto');
const root = dataProto;
const RequestType = root.lookupType('fastblock.data.DataRequest');
const ReplyType = root.lookupType('fastblock.data.DataReply');

export function encodeDataRequest(request: DataRequest): Uint8Array {
  return RequestType.encode(request).finish();
}

export function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (value && typeof value === 'object' && 'toNumber' in value) return (value as { toNumber(): number }).toNumber();
  return 0;
}

/** Decodes and validates a request header from outside; a bad one is a PROTOCOL error. */
export function decodeDataRequest(bytes: Uint8Array): DataRequest {
  let message: protobuf.Message;
  try {
    message = RequestType.decode(bytes);
  } catch (err) {
    throw new FastblockError(ErrorCode.PROTOCOL, 'undecodable data request header', { bytes: bytes.length }, { cause: err });
  }
  const raw = RequestType.toObject(message, { defaults: true }) as Record<string, unknown>;
  const request: DataRequest = {
    op: raw.op as DataOp,
    pool: toNumber(raw.pool),
    pg: toNumber(raw.pg),
    object: String(raw.object),
    offset: toNumber(raw.offset),
    length: toNumber(raw.length),
    epoch: toNumber(raw.epoch),
  };
  if (request.op < DataOp.READ || request.op > DataOp.WRITE_ZEROES) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `unknown data op ${request.op}`, { op: request.op });
  }
  if (request.object.length === 0 || request.length > MAX_DATA_LENGTH || !Number.isSafeInteger(request.offset)) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'data request out of bounds', { object: request.object, offset: request.offset, length: request.length });
  }
  return request;
}

export function encodeDataReply(reply: DataReply): Uint8Array {
  return ReplyType.encode({
    status: reply.status,
    leaderHint: reply.leaderHint === undefined ? 0 : reply.leaderHint + 1,
    epoch: reply.epoch,
    message: reply.message,
  }).finish();
}

export function decodeDataReply(bytes: Uint8Array): DataReply {
  let message: protobuf.Message;
  try {
    message = ReplyType.decode(bytes);
  } catch (err) {
    throw new FastblockError(ErrorCode.PROTOCOL, 'undecodable data reply header', { bytes: bytes.length }, { cause: err });
  }
  const raw = ReplyType.toObject(message, { defaults: true }) as Record<string, unknown>;
  const hint = toNumber(raw.leaderHint);
  return {
    status: raw.status as DataStatus,
    leaderHint: hint === 0 ? undefined : hint - 1,
    epoch: toNumber(raw.epoch),
    message: String(raw.message),
  };
}
