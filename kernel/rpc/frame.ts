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
 * covers of preamble and header is one contiguous range, continued over the payload.
 */
import { crc32, crc32Range } from './checksum.js';
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
  /** A view into received bytes, never a copy when read through onread (frame-decoder.ts). */
  readonly payload: Uint8Array;
  /**
   * The consumer promises not to use `header` or `payload` (or any view of them) again, so their
   * bytes may be reused (receive-slabs.ts). Optional: a frame never released stays valid for as
   * long as it is referenced. Idempotent.
   */
  release(): void;
}

export function payloadLength(payload: Payload | undefined): number {
  let total = 0;
  if (payload) for (const part of payload) total += part.byteLength;
  return total;
}

/**
 * Writes a frame's preamble and header at `target[at..]`, followed by its payload when `inline`
 * (the caller then sends those bytes alone; otherwise it sends the payload buffers right after
 * them). Returns the offset just past what it wrote.
 */
export function writeFrame(
  target: Buffer,
  at: number,
  kind: FrameKind,
  method: number,
  requestId: number,
  header: Uint8Array,
  payload: Payload | undefined,
  payloadBytes: number,
  checksumPayload: boolean,
  inline: boolean,
): number {
  target[at + 4] = FRAME_MAGIC;
  target[at + 5] = FRAME_VERSION;
  target[at + 6] = kind;
  target[at + 7] = checksumPayload ? FLAG_PAYLOAD_CRC : 0;
  target.writeUInt32LE(method >>> 0, at + 8);
  target.writeUInt32LE(requestId >>> 0, at + 12);
  target.writeUInt32LE(header.byteLength, at + 16);
  target.writeUInt32LE(payloadBytes, at + 20);
  if (header.byteLength > 0) target.set(header, at + PREAMBLE_BYTES);
  const headEnd = at + PREAMBLE_BYTES + header.byteLength;
  let end = headEnd;
  if (inline && payload) {
    for (const part of payload) {
      target.set(part, end);
      end += part.byteLength;
    }
  }
  // An inline payload lies behind the header: one pass over all of it. Otherwise the caller's
  // buffers are continued over as they are (no view of our own to make).
  let crc = crc32Range(target, at + 4, checksumPayload && inline ? end : headEnd);
  if (checksumPayload && !inline && payload) for (const part of payload) if (part.byteLength > 0) crc = crc32(part, crc);
  target.writeUInt32LE(crc, at);
  return end;
}

/**
 * The preamble and header of one frame in a buffer of their own; the payload buffers follow it
 * on the wire as they are. For tests and tools that speak the protocol by hand.
 */
export function encodeFrameHead(
  kind: FrameKind,
  method: number,
  requestId: number,
  header: Uint8Array,
  payload: Payload | undefined,
  checksumPayload: boolean,
): Buffer {
  const head = Buffer.allocUnsafe(PREAMBLE_BYTES + header.byteLength);
  writeFrame(head, 0, kind, method, requestId, header, payload, payloadLength(payload), checksumPayload, false);
  return head;
}
