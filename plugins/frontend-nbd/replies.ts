/**
 * Encoders for transmission-phase replies. A reply carries the request's 64-bit cookie back
 * untouched; it is kept as two 32-bit halves so no BigInt is made per request.
 */
import {
  REPLY_FLAG_DONE,
  ReplyType,
  SIMPLE_REPLY_MAGIC,
  SIMPLE_REPLY_SIZE,
  STRUCTURED_HEADER_SIZE,
  STRUCTURED_REPLY_MAGIC,
} from './protocol.js';

export interface Cookie {
  readonly cookieHi: number;
  readonly cookieLo: number;
}

/** Bytes before a read's data in its reply. */
export const SIMPLE_READ_PREFIX = SIMPLE_REPLY_SIZE;
export const STRUCTURED_READ_PREFIX = STRUCTURED_HEADER_SIZE + 8;

export function writeSimpleHeader(into: Buffer, cookie: Cookie, error: number): Buffer {
  into.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  into.writeUInt32BE(error, 4);
  into.writeUInt32BE(cookie.cookieHi, 8);
  into.writeUInt32BE(cookie.cookieLo, 12);
  return into;
}

export function simpleReply(cookie: Cookie, error: number): Buffer {
  return writeSimpleHeader(Buffer.allocUnsafe(SIMPLE_REPLY_SIZE), cookie, error);
}

export function writeChunkHeader(into: Buffer, cookie: Cookie, type: number, flags: number, length: number): Buffer {
  into.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  into.writeUInt16BE(flags, 4);
  into.writeUInt16BE(type, 6);
  into.writeUInt32BE(cookie.cookieHi, 8);
  into.writeUInt32BE(cookie.cookieLo, 12);
  into.writeUInt32BE(length, 16);
  return into;
}

/** Header of a final NBD_REPLY_TYPE_OFFSET_DATA chunk; `into` has room for the data after it. */
export function writeReadChunkHeader(into: Buffer, cookie: Cookie, offset: number, length: number): Buffer {
  writeChunkHeader(into, cookie, ReplyType.OFFSET_DATA, REPLY_FLAG_DONE, 8 + length);
  into.writeUInt32BE(Math.floor(offset / 0x1_0000_0000), 20);
  into.writeUInt32BE(offset >>> 0, 24);
  return into;
}

export function noneChunk(cookie: Cookie): Buffer {
  return writeChunkHeader(Buffer.allocUnsafe(STRUCTURED_HEADER_SIZE), cookie, ReplyType.NONE, REPLY_FLAG_DONE, 0);
}

/** A final NBD_REPLY_TYPE_ERROR chunk with a message a person can read. */
export function errorChunk(cookie: Cookie, error: number, message: string): Buffer {
  const text = Buffer.from(message.slice(0, 256), 'utf8');
  const out = Buffer.allocUnsafe(STRUCTURED_HEADER_SIZE + 6 + text.length);
  writeChunkHeader(out, cookie, ReplyType.ERROR, REPLY_FLAG_DONE, 6 + text.length);
  out.writeUInt32BE(error, STRUCTURED_HEADER_SIZE);
  out.writeUInt16BE(text.length, STRUCTURED_HEADER_SIZE + 4);
  text.copy(out, STRUCTURED_HEADER_SIZE + 6);
  return out;
}

/** A final NBD_REPLY_TYPE_BLOCK_STATUS chunk with one extent. */
export function blockStatusChunk(cookie: Cookie, contextId: number, length: number, status: number): Buffer {
  const out = Buffer.allocUnsafe(STRUCTURED_HEADER_SIZE + 12);
  writeChunkHeader(out, cookie, ReplyType.BLOCK_STATUS, REPLY_FLAG_DONE, 12);
  out.writeUInt32BE(contextId, STRUCTURED_HEADER_SIZE);
  out.writeUInt32BE(length, STRUCTURED_HEADER_SIZE + 4);
  out.writeUInt32BE(status, STRUCTURED_HEADER_SIZE + 8);
  return out;
}
