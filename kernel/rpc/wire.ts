/**
 * The frame layer's own messages (wire.proto): the hello exchange and error replies. An error
 * reply carries a FastblockError whole (code, message, context), so a caller far away switches
 * on the same code the handler threw.
 */
import { ErrorCode, FastblockError, isFastblockError } from '../errors.js';
import { loadProto, messageCodec } from './proto.js';

export interface Hello {
  protocol: number;
  targetShard: number;
  sourceShard: number;
  source: string;
}

export interface HelloReply {
  shard: number;
  daemon: string;
}

export interface ErrorReply {
  code: string;
  message: string;
  contextJson: string;
}

const root = loadProto('wire.proto');
export const HelloCodec = messageCodec<Hello>(root, 'fastblock.wire.Hello');
export const HelloReplyCodec = messageCodec<HelloReply>(root, 'fastblock.wire.HelloReply');
export const ErrorReplyCodec = messageCodec<ErrorReply>(root, 'fastblock.wire.ErrorReply');

const CODES = new Set<string>(Object.values(ErrorCode));

function contextJson(context: Readonly<Record<string, unknown>>): string {
  if (Object.keys(context).length === 0) return '';
  try {
    return JSON.stringify(context, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
  } catch {
    return JSON.stringify({ unserialisable: Object.keys(context) });
  }
}

/** The header of an ERROR frame for whatever a handler threw. Non-FastblockErrors become INTERNAL. */
export function encodeError(err: unknown): Uint8Array {
  const e = isFastblockError(err) ? err : new FastblockError(ErrorCode.INTERNAL, err instanceof Error ? err.message : String(err));
  return ErrorReplyCodec.encode({ code: e.code, message: e.message, contextJson: contextJson(e.context) });
}

/** The FastblockError an ERROR frame carries. A malformed one is itself a PROTOCOL error. */
export function decodeError(header: Uint8Array, remote: string): FastblockError {
  const reply = ErrorReplyCodec.decode(header);
  let context: Record<string, unknown> = {};
  if (reply.contextJson) {
    try {
      context = JSON.parse(reply.contextJson) as Record<string, unknown>;
    } catch {
      context = { contextJson: reply.contextJson };
    }
  }
  const code = CODES.has(reply.code) ? (reply.code as ErrorCode) : ErrorCode.INTERNAL;
  return new FastblockError(code, reply.message, { ...context, remote });
}
