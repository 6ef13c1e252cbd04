/**
 * Frames out of a byte stream (layout in frame.ts). A frame that lies whole inside one received
 * chunk is parsed where it lies: its header and payload are views into the chunk. Only a frame
 * that straddles chunks is assembled, into one buffer allocated at the frame's size (known from
 * its preamble, already checked against the limits) and filled as chunks arrive, so a large
 * payload is copied once and a peer trickling bytes costs the frame's size, not an object per
 * segment. A peer can thus make us reserve up to maxHeaderBytes + maxPayloadBytes per connection
 * with a bare preamble; the pages of an allocation that large are only touched as bytes arrive.
 */
import { crc32, crc32Range } from './checksum.js';
import { ErrorCode, FastblockError, assert } from '../errors.js';
import {
  DEFAULT_FRAME_LIMITS,
  FLAG_PAYLOAD_CRC,
  FRAME_MAGIC,
  FRAME_VERSION,
  FrameKind,
  PREAMBLE_BYTES,
  type Frame,
  type FrameLimits,
} from './frame.js';

const KIND_MAX = FrameKind.MESSAGE;
const EMPTY = Buffer.alloc(0);
/** A frame with at least this much left to arrive is read straight into its own buffer. */
const DIRECT_READ_BYTES = 32 * 1024;
const SLAB_BYTES = 256 * 1024;
/** A slab with less room than this is left to the frames that view it; reads go to a new one. */
const SLAB_ROOM_BYTES = 64 * 1024;

function protocolError(reason: string, context: Record<string, unknown>): FastblockError {
  return new FastblockError(ErrorCode.PROTOCOL, reason, context);
}

/**
 * Feed it chunks with push(); it calls onFrame for every complete frame, in order. Bad input
 * throws a FastblockError (PROTOCOL, or CORRUPT for a checksum mismatch); after that the stream
 * is unusable and the connection must close.
 */
export class FrameDecoder {
  /** Received bytes not yet looked at, in order: left over when onFrame asked to stop. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The frame being assembled across chunks (its preamble alone until that is complete). */
  private partial: Buffer | undefined;
  private partialFilled = 0;
  /** The partial frame's full size once its preamble was checked; 0 while still in the preamble. */
  private partialSize = 0;
  private readonly preamble = Buffer.allocUnsafe(PREAMBLE_BYTES);
  private failed = false;
  /** Receive slab for readBuffer(); bytes below slabUsed were handed out and are never reused. */
  private slab: Buffer | undefined;
  private slabUsed = 0;
  private readingIntoPartial = false;

  constructor(private readonly limits: FrameLimits = DEFAULT_FRAME_LIMITS) {}

  /** Bytes received but not yet handed out as frames (bounded by one frame plus what a pause holds). */
  get pendingBytes(): number {
    return this.heldBytes + this.partialFilled;
  }

  /** Buffers held while waiting for the rest of a frame or for the consumer. */
  get pendingChunks(): number {
    return this.held.length + (this.partial === undefined ? 0 : 1);
  }

  /**
   * Adds a chunk and hands out the complete frames it finishes. `onFrame` returns false to stop
   * (backpressure): the remaining bytes stay held until pump() is called.
   */
  push(chunk: Buffer, onFrame: (frame: Frame) => boolean | void): void {
    assert(!this.failed, 'push after a decode error');
    if (chunk.byteLength === 0) return;
    this.held.push(chunk);
    this.heldBytes += chunk.byteLength;
    this.pump(onFrame);
  }

  /**
   * For a socket that reads into buffers we choose (Node's `onread`): where the next read should
   * land. The rest of a large frame being assembled, so that its payload is read in place with
   * no copy; else free space in a receive slab, whose bytes are then parsed like any chunk (in
   * place: frames are views into the slab, which is why slab space is never reused).
   */
  readBuffer(): Buffer {
    const partial = this.partial;
    this.readingIntoPartial = partial !== undefined && this.partialSize - this.partialFilled >= DIRECT_READ_BYTES && this.held.length === 0;
    if (this.readingIntoPartial) return partial!.subarray(this.partialFilled);
    if (this.slab === undefined || this.slab.byteLength - this.slabUsed < SLAB_ROOM_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.slabUsed = 0;
    }
    return this.slab.subarray(this.slabUsed);
  }

  /** `bytes` bytes arrived in the buffer readBuffer() returned last. */
  received(bytes: number, onFrame: (frame: Frame) => boolean | void): void {
    assert(!this.failed, 'received after a decode error');
    if (this.readingIntoPartial) {
      this.partialFilled += bytes;
      if (this.partialFilled < this.partialSize) return;
      const whole = this.partial!;
      this.partial = undefined;
      this.partialFilled = 0;
      this.push(whole, onFrame);
      return;
    }
    const chunk = this.slab!.subarray(this.slabUsed, this.slabUsed + bytes);
    this.slabUsed += bytes;
    this.push(chunk, onFrame);
  }

  /** Hands out frames from held bytes, until none is complete or onFrame returns false. */
  pump(onFrame: (frame: Frame) => boolean | void): void {
    assert(!this.failed, 'pump after a decode error');
    try {
      while (this.held.length > 0) {
        const chunk = this.held[0]!;
        const used = this.consume(chunk, onFrame);
        this.heldBytes -= used;
        if (used === chunk.byteLength) this.held.shift();
        else {
          this.held[0] = chunk.subarray(used);
          return;
        }
      }
    } catch (err) {
      this.failed = true;
      this.held = [];
      this.heldBytes = 0;
      this.partial = undefined;
      this.partialFilled = 0;
      throw err;
    }
  }

  /** Frames out of one chunk; returns how many of its bytes were used (fewer when onFrame stopped). */
  private consume(chunk: Buffer, onFrame: (frame: Frame) => boolean | void): number {
    let at = 0;
    if (this.partial !== undefined) {
      at = this.fill(chunk);
      if (this.partialSize === 0 || this.partialFilled < this.partialSize) return at;
      const whole = this.partial;
      this.partial = undefined;
      this.partialFilled = 0;
      if (onFrame(this.frameAt(whole, 0, whole.byteLength)) === false) return at;
    }
    const end = chunk.byteLength;
    while (at < end) {
      if (end - at < PREAMBLE_BYTES) return this.startPartial(chunk, at, 0);
      const size = this.check(chunk, at);
      if (end - at < size) return this.startPartial(chunk, at, size);
      const more = onFrame(this.frameAt(chunk, at, size));
      at += size;
      if (more === false) return at;
    }
    return at;
  }

  /** Begins assembling a frame from the chunk's tail; `size` is 0 when its preamble is incomplete. */
  private startPartial(chunk: Buffer, at: number, size: number): number {
    this.partialSize = size;
    this.partial = size > 0 ? Buffer.allocUnsafe(size) : this.preamble;
    this.partialFilled = chunk.copy(this.partial, 0, at);
    return chunk.byteLength;
  }

  /** Copies the chunk's head into the partial frame, up to the frame's end; returns the bytes used. */
  private fill(chunk: Buffer): number {
    let at = 0;
    if (this.partialSize === 0) {
      at = chunk.copy(this.preamble, this.partialFilled, 0, PREAMBLE_BYTES - this.partialFilled);
      this.partialFilled += at;
      if (this.partialFilled < PREAMBLE_BYTES) return at;
      const size = this.check(this.preamble, 0);
      this.partial = Buffer.allocUnsafe(size);
      this.preamble.copy(this.partial, 0);
      this.partialSize = size;
    }
    const count = chunk.copy(this.partial!, this.partialFilled, at, at + this.partialSize - this.partialFilled);
    this.partialFilled += count;
    return at + count;
  }

  /** Validates the preamble at buf[at..] and returns the frame's full size. */
  private check(buf: Buffer, at: number): number {
    if (buf[at + 4] !== FRAME_MAGIC) throw protocolError(`bad frame magic 0x${buf[at + 4]!.toString(16)} (expected 0xfb): not a fastblock peer`, { magic: buf[at + 4] });
    if (buf[at + 5] !== FRAME_VERSION) throw protocolError(`frame version ${buf[at + 5]} is not ${FRAME_VERSION}`, { version: buf[at + 5] });
    const kind = buf[at + 6]!;
    if (kind < 1 || kind > KIND_MAX) throw protocolError(`unknown frame kind ${kind}`, { kind });
    if ((buf[at + 7]! & ~FLAG_PAYLOAD_CRC) !== 0) throw protocolError(`unknown frame flags 0x${buf[at + 7]!.toString(16)}`, { flags: buf[at + 7] });
    const headerLength = buf.readUInt32LE(at + 16);
    const payloadLength = buf.readUInt32LE(at + 20);
    if (headerLength > this.limits.maxHeaderBytes) {
      throw protocolError(`frame header of ${headerLength} bytes exceeds the limit of ${this.limits.maxHeaderBytes}`, { headerLength, limit: this.limits.maxHeaderBytes });
    }
    if (payloadLength > this.limits.maxPayloadBytes) {
      throw protocolError(`frame payload of ${payloadLength} bytes exceeds the limit of ${this.limits.maxPayloadBytes}`, { payloadLength, limit: this.limits.maxPayloadBytes });
    }
    return PREAMBLE_BYTES + headerLength + payloadLength;
  }

  /** The checked frame of `size` bytes at buf[at..], its checksum verified. */
  private frameAt(buf: Buffer, at: number, size: number): Frame {
    const headerEnd = at + PREAMBLE_BYTES + buf.readUInt32LE(at + 16);
    const end = at + size;
    const payload = end > headerEnd ? buf.subarray(headerEnd, end) : EMPTY;
    let crc = crc32Range(buf, at + 4, headerEnd);
    if (buf[at + 7]! & FLAG_PAYLOAD_CRC && payload.byteLength > 0) crc = crc32(payload, crc);
    const expected = buf.readUInt32LE(at);
    if (crc !== expected) {
      throw new FastblockError(ErrorCode.CORRUPT, `frame checksum mismatch (got ${crc.toString(16)}, frame says ${expected.toString(16)})`, {
        kind: buf[at + 6],
        method: buf.readUInt32LE(at + 8),
        headerLength: headerEnd - at - PREAMBLE_BYTES,
        payloadLength: end - headerEnd,
      });
    }
    return {
      kind: buf[at + 6] as FrameKind,
      method: buf.readUInt32LE(at + 8),
      requestId: buf.readUInt32LE(at + 12),
      header: headerEnd > at + PREAMBLE_BYTES ? buf.subarray(at + PREAMBLE_BYTES, headerEnd) : EMPTY,
      payload,
    };
  }
}
