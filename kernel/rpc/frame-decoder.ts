/**
 * Frames out of a byte stream (layout in frame.ts), two ways:
 *
 * - push(chunk), for a stream that hands us chunks ('data' events): a frame that lies whole
 *   inside one chunk is parsed where it lies (header and payload are views into the chunk); a
 *   frame that straddles chunks is assembled into one buffer allocated at the frame's size (known
 *   from its preamble, already checked against the limits) and filled as chunks arrive, so a
 *   large payload is copied once and a peer trickling bytes costs the frame's size, not an object
 *   per segment.
 * - readBuffer() / received(n), for a socket that reads into buffers we pick (Node's `onread`):
 *   bytes land in a receive slab (sized for 8 to 16 of the largest recent frames, a power of two
 *   from 256 KiB to 4 MiB, or one frame's size beyond that) and frames are parsed where they lie; a
 *   frame that has begun keeps arriving behind its start while the slab has room for all of it,
 *   so it is never copied. One that does not fit moves, with what already arrived of it, to the
 *   next slab, sized to take it.
 *
 * Frames handed out are views: a payload kept past its use pins the chunk or slab it views (copy
 * to keep; a slab is at most 256 KiB while frames are small). A slab is reused only once every
 * frame parsed from it was released (Frame.release(), receive-slabs.ts). A peer can make us
 * reserve up to maxHeaderBytes + maxPayloadBytes per connection with a bare preamble; the pages
 * of an allocation that large are only touched as bytes arrive.
 */
import { crc32Range } from './checksum.js';
import { ErrorCode, FastblockError, assert } from '../errors.js';
import { LARGEST_SLAB_BYTES, ReceiveSlabPool, type ReceiveSlab } from './receive-slabs.js';
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
/**
 * A new slab holds up to this many (at least half as many) of the largest frames of the last
 * one, so that a frame rarely meets the slab's end (reads take whatever the socket has, often
 * several frames): within the pool's sizes, the smallest of which keeps what a kept view of a
 * small frame pins small.
 */
const SLAB_FRAMES = 16;
/** A read is offered at least this much room; a slab with less is left to the frames that view it. */
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
  /** Receive slab for readBuffer(): [0, slabParsed) handed out, [slabParsed, slabUsed) not yet. */
  private slab: ReceiveSlab | undefined;
  private slabUsed = 0;
  private slabParsed = 0;
  /** Full size of the incomplete frame at slabParsed, once its preamble arrived (checked); else 0. */
  private slabFrameSize = 0;
  /** The largest frame parsed from the current slab, which sizes the next. */
  private slabLargestFrame = 0;

  constructor(
    private readonly limits: FrameLimits = DEFAULT_FRAME_LIMITS,
    private readonly slabs: ReceiveSlabPool = new ReceiveSlabPool(),
  ) {}

  /** Bytes received but not yet handed out as frames (bounded by one frame plus what a pause holds). */
  get pendingBytes(): number {
    return this.heldBytes + this.partialFilled + (this.slabUsed - this.slabParsed);
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
   * land. Never throws: the preamble of a frame that has begun was checked when it arrived.
   */
  readBuffer(): Buffer {
    const slab = this.slab;
    const pending = this.slabUsed - this.slabParsed;
    const size = this.slabFrameSize;
    if (slab !== undefined) {
      // Room for the rest of the frame that has begun (then it is never copied), or for a good read.
      const room = slab.bytes.byteLength - this.slabUsed;
      if (size > 0 ? room >= size - pending : room >= SLAB_ROOM_BYTES) return slab.bytes.subarray(this.slabUsed);
    }
    // A new slab, sized for the frames of the last and for the one that has begun, which moves
    // along with what arrived of it (its preamble at least, when the slab's end cut it off).
    // Rounded down to the pool's power-of-two sizes, so that a kept view pins no more than needed.
    const largest = Math.max(this.slabLargestFrame, size);
    const wanted = Math.min(LARGEST_SLAB_BYTES, 2 ** Math.floor(Math.log2(SLAB_FRAMES * largest + 1)));
    const next = this.slabs.take(Math.max(wanted, size + SLAB_ROOM_BYTES));
    this.slabLargestFrame = 0;
    if (slab !== undefined) {
      if (pending > 0) slab.bytes.copy(next.bytes, 0, this.slabParsed, this.slabUsed);
      // The decoder reads no more into it: it is reused once the frames that view it are released.
      slab.release();
    }
    this.slab = next;
    this.slabParsed = 0;
    this.slabUsed = pending;
    return next.bytes.subarray(pending);
  }

  /** `bytes` bytes arrived in the buffer readBuffer() returned last. */
  received(bytes: number, onFrame: (frame: Frame) => boolean | void): void {
    assert(!this.failed, 'received after a decode error');
    this.slabUsed += bytes;
    this.guarded(() => this.parseSlab(onFrame));
  }

  /** Frames out of the slab's unparsed bytes, in place, until one is incomplete or onFrame returns false. */
  private parseSlab(onFrame: (frame: Frame) => boolean | void): void {
    const slab = this.slab!;
    const bytes = slab.bytes;
    for (;;) {
      const pending = this.slabUsed - this.slabParsed;
      if (pending < PREAMBLE_BYTES) {
        this.slabFrameSize = 0;
        return;
      }
      const size = this.check(bytes, this.slabParsed);
      if (pending < size) {
        this.slabFrameSize = size;
        return;
      }
      const frame = this.frameAt(bytes, this.slabParsed, size, slab);
      this.slabParsed += size;
      if (size > this.slabLargestFrame) this.slabLargestFrame = size;
      this.slabFrameSize = 0;
      if (onFrame(frame) === false) return;
    }
  }

  /** Runs decoding work; a decode error leaves the decoder failed and empty, and is rethrown. */
  private guarded(work: () => void): void {
    try {
      work();
    } catch (err) {
      this.failed = true;
      this.held = [];
      this.heldBytes = 0;
      this.partial = undefined;
      this.partialFilled = 0;
      // The slab is dropped, not released: the socket may still read into it until it closes.
      this.slab = undefined;
      this.slabUsed = this.slabParsed = this.slabFrameSize = this.slabLargestFrame = 0;
      throw err;
    }
  }

  /** Hands out frames from held bytes, until none is complete or onFrame returns false. */
  pump(onFrame: (frame: Frame) => boolean | void): void {
    assert(!this.failed, 'pump after a decode error');
    this.guarded(() => {
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
      if (this.slab !== undefined) this.parseSlab(onFrame);
    });
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
      if (onFrame(this.frameAt(whole, 0, whole.byteLength, undefined)) === false) return at;
    }
    const end = chunk.byteLength;
    while (at < end) {
      if (end - at < PREAMBLE_BYTES) return this.startPartial(chunk, at, 0);
      const size = this.check(chunk, at);
      if (end - at < size) return this.startPartial(chunk, at, size);
      const more = onFrame(this.frameAt(chunk, at, size, undefined));
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

  /** The checked frame of `size` bytes at buf[at..], its checksum verified; it holds `slab` until released. */
  private frameAt(buf: Buffer, at: number, size: number, slab: ReceiveSlab | undefined): Frame {
    const headerEnd = at + PREAMBLE_BYTES + buf.readUInt32LE(at + 16);
    const end = at + size;
    const payload = end > headerEnd ? buf.subarray(headerEnd, end) : EMPTY;
    // Header and payload are contiguous here: one pass over both when the payload is covered.
    const crc = crc32Range(buf, at + 4, buf[at + 7]! & FLAG_PAYLOAD_CRC ? end : headerEnd);
    const expected = buf.readUInt32LE(at);
    if (crc !== expected) {
      throw new FastblockError(ErrorCode.CORRUPT, `frame checksum mismatch (got ${crc.toString(16)}, frame says ${expected.toString(16)})`, {
        kind: buf[at + 6],
        method: buf.readUInt32LE(at + 8),
        headerLength: headerEnd - at - PREAMBLE_BYTES,
        payloadLength: end - headerEnd,
      });
    }
    slab?.hold();
    return new ReceivedFrame(
      buf[at + 6] as FrameKind,
      buf.readUInt32LE(at + 8),
      buf.readUInt32LE(at + 12),
      headerEnd > at + PREAMBLE_BYTES ? buf.subarray(at + PREAMBLE_BYTES, headerEnd) : EMPTY,
      payload,
      slab,
    );
  }
}

class ReceivedFrame implements Frame {
  constructor(
    readonly kind: FrameKind,
    readonly method: number,
    readonly requestId: number,
    readonly header: Uint8Array,
    readonly payload: Uint8Array,
    /** The slab the views lie in, until released; undefined for a chunk or an assembled frame (nothing to reuse). */
    private slab: ReceiveSlab | undefined,
  ) {}

  release(): void {
    const slab = this.slab;
    if (slab === undefined) return;
    this.slab = undefined;
    slab.release();
  }
}
