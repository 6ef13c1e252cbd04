/**
 * The frame: what every transport moves. A fixed 24-byte preamble, then the header (a protobuf
 * message the service defines), then the payload (raw bytes, never inside the protobuf):
 *
 *   off size
 *    0  1   magic 0xFB
 *    1  1   version (FRAME_VERSION)
 *    2  1   kind (FrameKind)
 *    3  1   flags (FLAG_PAYLOAD_CRC: the checksum covers the payload too)
 *    4  4   method id (the service's; 0 for HELLO*)
 *    8  4   request id (REQUEST, REPLY and ERROR; 0 otherwise)
 *   12  4   header length
 *   16  4   payload length
 *   20  4   CRC-32 of bytes 0..19, the header and (with FLAG_PAYLOAD_CRC) the payload
 *   24  ... header, payload
 *
 * Little-endian throughout. The preamble is fixed-size rather than protobuf so that a receiver
 * knows a frame's full size from 24 bytes, refuses an oversized one before buffering it, and
 * finds payload boundaries without decoding anything.
 */
import { crc32 } from 'node:zlib';
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
  head[0] = FRAME_MAGIC;
  head[1] = FRAME_VERSION;
  head[2] = kind;
  head[3] = checksumPayload ? FLAG_PAYLOAD_CRC : 0;
  head.writeUInt32LE(method >>> 0, 4);
  head.writeUInt32LE(requestId >>> 0, 8);
  head.writeUInt32LE(header.byteLength, 12);
  head.writeUInt32LE(length, 16);
  head.set(header, PREAMBLE_BYTES);
  let crc = crc32(head.subarray(0, 20));
  if (header.byteLength > 0) crc = crc32(header, crc);
  if (checksumPayload && payload) for (const part of payload) crc = crc32(part, crc);
  head.writeUInt32LE(crc, 20);
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
  /** Offset of the first unread byte in chunks[0]. */
  private offset = 0;
  private buffered = 0;
  private preamble: Buffer | undefined;
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
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    this.pump(onFrame);
  }

  /** Hands out frames already buffered, until none is complete or onFrame returns false. */
  pump(onFrame: (frame: Frame) => boolean | void): void {
    assert(!this.failed, 'pump after a decode error');
    try {
      for (;;) {
        if (!this.preamble) {
          if (this.buffered < PREAMBLE_BYTES) return;
          this.preamble = this.checkPreamble(this.take(PREAMBLE_BYTES));
        }
        const p = this.preamble;
        const headerLength = p.readUInt32LE(12);
        const payloadLength = p.readUInt32LE(16);
        if (this.buffered < headerLength + payloadLength) return;
        const header = this.take(headerLength);
        const payload = this.take(payloadLength);
        this.preamble = undefined;
        let crc = crc32(p.subarray(0, 20));
        if (headerLength > 0) crc = crc32(header, crc);
        if (p[3]! & FLAG_PAYLOAD_CRC && payloadLength > 0) crc = crc32(payload, crc);
        const expected = p.readUInt32LE(20);
        if (crc !== expected) {
          throw new FastblockError(ErrorCode.CORRUPT, `frame checksum mismatch (got ${crc.toString(16)}, frame says ${expected.toString(16)})`, {
            kind: p[2],
            method: p.readUInt32LE(4),
            headerLength,
            payloadLength,
          });
        }
        const more = onFrame({ kind: p[2] as FrameKind, method: p.readUInt32LE(4), requestId: p.readUInt32LE(8), header, payload });
        if (more === false) return;
      }
    } catch (err) {
      this.failed = true;
      this.chunks = [];
      this.buffered = 0;
      throw err;
    }
  }

  private checkPreamble(p: Buffer): Buffer {
    if (p[0] !== FRAME_MAGIC) throw protocolError(`bad frame magic 0x${p[0]!.toString(16)} (expected 0xfb): not a fastblock peer`, { magic: p[0] });
    if (p[1] !== FRAME_VERSION) throw protocolError(`frame version ${p[1]} is not ${FRAME_VERSION}`, { version: p[1] });
    if (p[2]! < 1 || p[2]! > KIND_MAX) throw protocolError(`unknown frame kind ${p[2]}`, { kind: p[2] });
    if ((p[3]! & ~FLAG_PAYLOAD_CRC) !== 0) throw protocolError(`unknown frame flags 0x${p[3]!.toString(16)}`, { flags: p[3] });
    const headerLength = p.readUInt32LE(12);
    const payloadLength = p.readUInt32LE(16);
    if (headerLength > this.limits.maxHeaderBytes) {
      throw protocolError(`frame header of ${headerLength} bytes exceeds the limit of ${this.limits.maxHeaderBytes}`, { headerLength, limit: this.limits.maxHeaderBytes });
    }
    if (payloadLength > this.limits.maxPayloadBytes) {
      throw protocolError(`frame payload of ${payloadLength} bytes exceeds the limit of ${this.limits.maxPayloadBytes}`, { payloadLength, limit: this.limits.maxPayloadBytes });
    }
    return p;
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
