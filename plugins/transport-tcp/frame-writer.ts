/**
 * Writes frames to a socket, batched per tick: frames queue here and the first write of a tick
 * schedules one flush that hands them all to the socket together (one writev, or one write).
 *
 * Frames are written into the send buffer of a SendBatch (kernel/net): preamble, header and, for a
 * payload up to INLINE_PAYLOAD_BYTES, the payload too, so a run of small frames is one contiguous
 * range that costs the socket one entry, not two per frame. Larger payloads are never copied: their
 * buffers follow their frame head in the queue as they are.
 *
 * A frame may name received bytes to give back once it is written (`release`: the request a reply
 * answers, whose payload the reply may be sending): they are released when the socket reports the
 * flush that carried the frame written, or failed, after which the kernel no longer reads them.
 * `onWritten`, when given, hears of every flush that completes (the queue has shrunk).
 */
import type { Socket } from 'node:net';
import { PREAMBLE_BYTES, payloadLength, writeFrame, type FrameKind } from '../../kernel/rpc/frame.js';
import type { Payload } from '../../kernel/contracts/transport.js';
import { SendBatch } from '../../kernel/net/send-batch.js';

/** What a written frame gives back (a received Frame whose bytes it may be sending). */
export interface Releasable {
  release(): void;
}

/** Payloads up to this size are copied into the send buffer: cheaper than a socket write of their own. */
const INLINE_PAYLOAD_BYTES = 8 * 1024;

export class FrameWriter {
  private readonly batch: SendBatch;
  /** Released once the next flush is written. */
  private releases: Releasable[] = [];
  private scheduled = false;
  private readonly flush = (): void => this.flushNow();

  constructor(
    private readonly socket: Socket,
    private readonly checksumPayload: boolean,
    private readonly onWritten?: () => void,
  ) {
    this.batch = new SendBatch(socket);
  }

  /** Bytes accepted but not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.socket.writableLength + this.batch.queuedBytes;
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
    const at = this.batch.reserve(PREAMBLE_BYTES + header.byteLength + (inline ? payloadBytes : 0));
    this.batch.filled(writeFrame(this.batch.buffer, at, kind, method, requestId, header, payload, payloadBytes, this.checksumPayload, inline));
    if (!inline) for (const part of payload!) this.batch.append(part);
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

  private flushNow(): void {
    this.scheduled = false;
    const releases = this.releases;
    if (releases.length > 0) this.releases = [];
    // An inline arrow (a named one costs a defineProperty per flush when run through tsx).
    const onWritten = this.onWritten;
    const written =
      releases.length === 0 && onWritten === undefined
        ? undefined
        : (): void => {
            releaseAll(releases);
            onWritten?.();
          };
    if (!this.batch.flush(written)) releaseAll(releases);
  }
}

function releaseAll(releases: Releasable[]): void {
  for (const frame of releases) frame.release();
}
