/**
 * Writes frames to a socket, batched per tick: frames queue here and the first write of a tick
 * schedules one flush that hands them all to the socket together (one writev, or one write).
 *
 * Frames are written into a send buffer: preamble, header and, for a payload up to
 * INLINE_PAYLOAD_BYTES, the payload too, so a run of small frames is one contiguous range that
 * costs the socket one entry, not two per frame. Larger payloads are never copied: their buffers
 * follow their frame head in the queue as they are. The send buffer is reused from its start whenever
 * the socket has handed everything earlier to the kernel; while the kernel is behind, a full one
 * is left to the writes that still reference it and a new one is started.
 *
 * A frame may name received bytes to give back once it is written (`release`: the request a reply
 * answers, whose payload the reply may be sending): they are released when the socket reports the
 * flush that carried the frame written, or failed, after which the kernel no longer reads them.
 * `onWritten`, when given, hears of every flush that completes (the queue has shrunk).
 */
import type { Socket } from 'node:net';
import { PREAMBLE_BYTES, payloadLength, writeFrame, type FrameKind } from '../../kernel/rpc/frame.js';
import type { Payload } from '../../kernel/contracts/transport.js';

/** What a written frame gives back (a received Frame whose bytes it may be sending). */
export interface Releasable {
  release(): void;
}

/** Payloads up to this size are copied into the send buffer: cheaper than a socket write of their own. */
const INLINE_PAYLOAD_BYTES = 8 * 1024;
const BUFFER_MIN_BYTES = 64 * 1024;
const BUFFER_MAX_BYTES = 512 * 1024;

export class FrameWriter {
  private buffer: Buffer | undefined;
  private used = 0;
  /** Start of the send buffer's bytes not yet moved to `parts`. */
  private cut = 0;
  /** What the next flush writes, in order: send-buffer ranges and large payload buffers. */
  private parts: Uint8Array[] = [];
  private queuedBytes = 0;
  /** Released once the next flush is written. */
  private releases: Releasable[] = [];
  private scheduled = false;
  private readonly flush = (): void => this.flushNow();

  constructor(
    private readonly socket: Socket,
    private readonly checksumPayload: boolean,
    private readonly onWritten?: () => void,
  ) {}

  /** Bytes accepted but not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.socket.writableLength + this.queuedBytes;
  }

  /** False when the socket can no longer take writes (the frame was dropped, `release` released). */
  write(kind: FrameKind, method: number, requestId: number, header: Uint8Array, payload?: Payload, release?: Releasable): boolean {
    if (!this.socket.writable) {
      release?.release();
      return false;
    }
    if (release !== undefined) this.releases.push(release);
    const payloadBytes = payloadLength(payload);
    const inline = payloadBytes <= INLINE_PAYLOAD_BYTES;
    const headBytes = PREAMBLE_BYTES + header.byteLength;
    const at = this.reserve(headBytes + (inline ? payloadBytes : 0));
    this.used = writeFrame(this.buffer!, at, kind, method, requestId, header, payload, payloadBytes, this.checksumPayload, inline);
    if (!inline) {
      this.cutRange();
      for (const part of payload!) if (part.byteLength > 0) this.parts.push(part);
    }
    this.queuedBytes += headBytes + payloadBytes;
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(this.flush);
    }
    return true;
  }

  /** Writes what is queued, then ends the socket (a refusal that must reach the peer before the close). */
  end(): void {
    this.flushNow();
    this.socket.end();
  }

  /** Room for `bytes` in the send buffer; returns where they go. */
  private reserve(bytes: number): number {
    // Nothing of the buffer is queued here or held by the socket: start over (no new allocation).
    if (this.used > 0 && this.queuedBytes === 0 && this.socket.writableLength === 0) this.used = this.cut = 0;
    if (this.buffer !== undefined && this.used + bytes <= this.buffer.byteLength) return this.used;
    this.cutRange();
    const grown = this.buffer === undefined ? BUFFER_MIN_BYTES : Math.min(BUFFER_MAX_BYTES, this.buffer.byteLength * 2);
    this.buffer = Buffer.allocUnsafeSlow(Math.max(grown, bytes));
    this.used = this.cut = 0;
    return 0;
  }

  private cutRange(): void {
    if (this.used === this.cut) return;
    this.parts.push(this.buffer!.subarray(this.cut, this.used));
    this.cut = this.used;
  }

  private flushNow(): void {
    this.scheduled = false;
    this.cutRange();
    const parts = this.parts;
    this.parts = [];
    this.queuedBytes = 0;
    const releases = this.releases;
    if (releases.length > 0) this.releases = [];
    if (!this.socket.writable || parts.length === 0) {
      releaseAll(releases);
      return;
    }
    // An inline arrow (a named one costs a defineProperty per flush when run through tsx).
    const onWritten = this.onWritten;
    const written =
      releases.length === 0 && onWritten === undefined
        ? undefined
        : (): void => {
            releaseAll(releases);
            onWritten?.();
          };
    if (parts.length === 1) {
      this.socket.write(parts[0]!, written);
      return;
    }
    // Corked writes complete together: the last one's callback comes when all are written.
    this.socket.cork();
    const last = parts.length - 1;
    for (let i = 0; i < last; i++) this.socket.write(parts[i]!);
    this.socket.write(parts[last]!, written);
    this.socket.uncork();
  }
}

function releaseAll(releases: Releasable[]): void {
  for (const frame of releases) frame.release();
}
