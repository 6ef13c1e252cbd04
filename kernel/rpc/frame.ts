/**
 * The frame: what every transport moves. A fixed 24-byte preamble, then the header (a protobuf
 * message the service defines), then the payload (raw bytes, never inside the protobuf):
 *
 *   off size
 *    0  4   CRC-32 of bytes 4..(24 + header length) and, with FLAG_PAYLOAD_CRC, the payload
 *    4  1   magic 0xFB
 *    5  1   version (FRAME_VERSION)
 *    6  1   kind (FrameKind)
 *    7  1   flags (FLAG_PAYLOAD_CRC: the checksum covers the payload too)
 *    8  4   method id (the service's; 0 for HELLO*)
 *   12  4   request id (REQUEST, REPLY and ERROR; 0 otherwise)
 *   16  4   header length
 *   20  4   payload length
 *   24  ... header, payload
 *
 * Little-endian throughout. The preamble is fixed-size rather than protobuf so that a receiver
 * knows a frame's full size from 24 bytes, refuses an oversized one before buffering it, and
 * finds payload boundaries without decoding anything. The checksum comes first so that what it
 * covers of preamble and header is one contiguous range: one CRC call per frame head.
 */
import { crc32 } from './checksum.js';
import { ErrorCode, FastblockError, assert } from '../errors.js';
import type { Payload } from '../contracts/transport.js';

export const FRAME_MAGIC = 0xfb;
export const FRAME_VERSION = 1;
export const PREAMBLE_BYTES = 24;
export const FLAG_PAYLOAD_CRC = 0x01;

export const FrameKind = {
  HELLO: 1,
  HELLO_OK: 2,
  REQUEST: 3,
  REPLY: 4,
  ERROR: 5,
  MESSAGE: 6,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];
const KIND_MAX = FrameKind.MESSAGE;

export interface FrameLimits {
  readonly maxHeaderBytes: number;
  readonly maxPayloadBytes: number;
}

export const DEFAULT_FRAME_LIMITS: FrameLimits = { maxHeaderBytes: 64 * 1024, maxPayloadBytes: 64 * 1024 * 1024 };

export interface Frame {
  readonly kind: FrameKind;
  readonly method: number;
  readonly requestId: number;
  readonly header: Uint8Array;
  /** A view into received bytes (no copy when the frame arrived in one chunk). */
  readonly payload: Uint8Array;
}

export function payloadLength(payload: Payload | undefined): number {
  let total = 0;
  if (payload) for (const part of payload) total += part.byteLength;
  return total;
}

/**
 * The preamble and header of one frame, in one buffer; the caller writes the payload buffers
 * after it as they are (writev). The header is small and copied once; the payload never is.
 */
export function encodeFrameHead(
  kind: FrameKind,
  method: number,
  requestId: number,
  header: Uint8Array,
  payload: Payload | undefined,
  checksumPayload: boolean,
): Buffer {
  const length = payloadLength(payload);
  const head = Buffer.allocUnsafe(PREAMBLE_BYTES + header.byteLength);
  head[4] = FRAME_MAGIC;
  head[5] = FRAME_VERSION;
  head[6] = kind;
  head[7] = checksumPayload ? FLAG_PAYLOAD_CRC : 0;
  head.writeUInt32LE(method >>> 0, 8);
  head.writeUInt32LE(requestId >>> 0, 12);
  head.writeUInt32LE(header.byteLength, 16);
  head.writeUInt32LE(length, 20);
  head.set(header, PREAMBLE_BYTES);
  let crc = crc32(head.subarray(4));
  if (checksumPayload && payload) for (const part of payload) if (part.byteLength > 0) crc = crc32(part, crc);
  head.writeUInt32LE(crc, 0);
  return head;
}

function protocolError(reason: string, context: Record<string, unknown>): FastblockError {
  return new FastblockError(ErrorCode.PROTOCOL, reason, context);
}

/**
 * Reassembles frames from a byte stream. Feed it chunks with push(); it calls onFrame for every
 * complete frame, in order. Bad input throws a FastblockError (PROTOCOL, or CORRUPT for a
 * checksum mismatch); after that the stream is unusable and the connection must close.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private arena: Buffer | undefined;
  private arenaUsed = 0;
  /** Offset of the first unread byte in chunks[0]. */
  private offset = 0;
  private buffered = 0;
  /** Lengths of the frame whose preamble was checked; -1 while waiting for a preamble. */
  private headerLength = -1;
  private payloadLength = 0;
  private failed = false;

  constructor(private readonly limits: FrameLimits = DEFAULT_FRAME_LIMITS) {}

  /** Bytes received but not yet handed out as frames (bounded by one frame's size). */
  get pendingBytes(): number {
    return this.buffered;
  }

  /**
   * Adds a chunk and hands out the complete frames it finishes. `onFrame` returns false to stop
   * (backpressure): the remaining bytes stay buffered until pump() is called.
   */
  push(chunk: Buffer, onFrame: (frame: Frame) => boolean | void): void {
    assert(!this.failed, 'push after a decode error');
    if (chunk.byteLength === 0) return;
    this.append(chunk);
    this.buffered += chunk.byteLength;
    this.pump(onFrame);
  }

  /** Chunks held while waiting for the rest of a frame (bounded: see append). */
  get pendingChunks(): number {
    return this.chunks.length;
  }

  /**
   * Small chunks are copied into an append-only arena instead of being kept one object each: a
   * peer trickling a large frame a few bytes per segment would otherwise cost us a Buffer object
   * per segment, many times the frame's own size. Bytes already handed out as views are never
   * overwritten (a full arena is replaced, not reused).
   */
  private append(chunk: Buffer): void {
    if (chunk.byteLength >= SMALL_CHUNK_BYTES || this.chunks.length === 0) {
      this.chunks.push(chunk);
      return;
    }
    const last = this.chunks[this.chunks.length - 1]!;
    const arena = this.arena;
    const contiguous = arena !== undefined && last.buffer === arena.buffer && last.byteOffset + last.byteLength === arena.byteOffset + this.arenaUsed;
    if (!contiguous || this.arenaUsed + chunk.byteLength > arena!.byteLength) {
      this.arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
      this.arenaUsed = chunk.copy(this.arena, 0);
      this.chunks.push(this.arena.subarray(0, this.arenaUsed));
      return;
    }
    chunk.copy(arena!, this.arenaUsed);
    this.arenaUsed += chunk.byteLength;
    // The last entry grows to cover the new bytes (same memory, longer view).
    this.chunks[this.chunks.length - 1] = arena!.subarray(last.byteOffset - arena!.byteOffset, this.arenaUsed);
  }

  /** Hands out frames already buffered, until none is complete or onFrame returns false. */
  pump(onFrame: (frame: Frame) => boolean | void): void {
    assert(!this.failed, 'pump after a decode error');
    try {
      for (;;) {
        if (this.headerLength < 0) {
          if (this.buffered < PREAMBLE_BYTES) return;
          this.checkPreamble(this.peekPreamble());
        }
        const headerLength = this.headerLength;
        const payloadLength = this.payloadLength;
        if (this.buffered < PREAMBLE_BYTES + headerLength + payloadLength) return;
        const head = this.take(PREAMBLE_BYTES + headerLength);
        const payload = this.take(payloadLength);
        this.headerLength = -1;
        let crc = crc32(head.subarray(4));
        if (head[7]! & FLAG_PAYLOAD_CRC && payloadLength > 0) crc = crc32(payload, crc);
        const expected = head.readUInt32LE(0);
        if (crc !== expected) {
          throw new FastblockError(ErrorCode.CORRUPT, `frame checksum mismatch (got ${crc.toString(16)}, frame says ${expected.toString(16)})`, {
            kind: head[6],
            method: head.readUInt32LE(8),
            headerLength,
            payloadLength,
          });
        }
        const frame: Frame = {
          kind: head[6] as FrameKind,
          method: head.readUInt32LE(8),
          requestId: head.readUInt32LE(12),
          header: head.subarray(PREAMBLE_BYTES),
          payload,
        };
        if (onFrame(frame) === false) return;
      }
    } catch (err) {
      this.failed = true;
      this.chunks = [];
      this.buffered = 0;
      throw err;
    }
  }

  /** The next 24 bytes without consuming them (a view, or a copy when they straddle chunks). */
  private peekPreamble(): Buffer {
    const first = this.chunks[0]!;
    if (first.byteLength - this.offset >= PREAMBLE_BYTES) return first.subarray(this.offset, this.offset + PREAMBLE_BYTES);
    const copy = Buffer.allocUnsafe(PREAMBLE_BYTES);
    let filled = 0;
    for (let i = 0, from = this.offset; filled < PREAMBLE_BYTES; i++, from = 0) {
      const chunk = this.chunks[i]!;
      filled += chunk.copy(copy, filled, from, Math.min(chunk.byteLength, from + PREAMBLE_BYTES - filled));
    }
    return copy;
  }

  private checkPreamble(p: Buffer): void {
    if (p[4] !== FRAME_MAGIC) throw protocolError(`bad frame magic 0x${p[4]!.toString(16)} (expected 0xfb): not a fastblock peer`, { magic: p[4] });
    if (p[5] !== FRAME_VERSION) throw protocolError(`frame version ${p[5]} is not ${FRAME_VERSION}`, { version: p[5] });
    if (p[6]! < 1 || p[6]! > KIND_MAX) throw protocolError(`unknown frame kind ${p[6]}`, { kind: p[6] });
    if ((p[7]! & ~FLAG_PAYLOAD_CRC) !== 0) throw protocolError(`unknown frame flags 0x${p[7]!.toString(16)}`, { flags: p[7] });
    const headerLength = p.readUInt32LE(16);
    const payloadLength = p.readUInt32LE(20);
    if (headerLength > this.limits.maxHeaderBytes) {
      throw protocolError(`frame header of ${headerLength} bytes exceeds the limit of ${this.limits.maxHeaderBytes}`, { headerLength, limit: this.limits.maxHeaderBytes });
    }
    if (payloadLength > this.limits.maxPayloadBytes) {
      throw protocolError(`frame payload of ${payloadLength} bytes exceeds the limit of ${this.limits.maxPayloadBytes}`, { payloadLength, limit: this.limits.maxPayloadBytes });
    }
    this.headerLength = headerLength;
    this.payloadLength = payloadLength;
  }

  /** The next n buffered bytes: a view when they sit in one chunk, else one copy. */
  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.chunks[0]!;
    const available = first.byteLength - this.offset;
    let out: Buffer;
    if (available >= n) {
      out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      if (this.offset === first.byteLength) {
        this.chunks.shift();
        this.offset = 0;
      }
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const chunk = this.chunks[0]!;
        const count = Math.min(n - filled, chunk.byteLength - this.offset);
        chunk.copy(out, filled, this.offset, this.offset + count);
        filled += count;
        this.offset += count;
        if (this.offset === chunk.byteLength) {
          this.chunks.shift();
          this.offset = 0;
        }
      }
    }
    this.buffered -= n;
    return out;
  }
}

const EMPTY = Buffer.alloc(0);
/** Chunks smaller than this are coalesced into an arena of ARENA_BYTES. */
const SMALL_CHUNK_BYTES = 4096;
const ARENA_BYTES = 64 * 1024;
