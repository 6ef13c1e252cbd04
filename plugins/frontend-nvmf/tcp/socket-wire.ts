/**
 * A Wire over a net.Socket: PDUs sent during one turn of the event loop leave in one corked batch
 * (a single writev), and reading pauses while the host is not draining what we send.
 */
import type { Socket } from 'node:net';

/** Stop reading new commands while this much output is queued in the socket. */
const HIGH_WATER_BYTES = 16 * 1024 * 1024;
/** A closing connection whose peer never finishes the close is destroyed after this long. */
const CLOSE_LINGER_MS = 5000;

export class SocketWire {
  private pending: Uint8Array[] = [];
  private scheduled = false;
  private closing = false;

  constructor(private readonly socket: Socket) {
    socket.on('drain', () => {
      if (!this.closing && socket.isPaused()) socket.resume();
    });
  }

  send(parts: readonly Uint8Array[]): void {
    if (this.closing || this.socket.destroyed) return;
    this.pending.push(...parts);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const parts = this.pending;
    this.pending = [];
    if (this.socket.destroyed || parts.length === 0) return;
    this.socket.cork();
    for (const part of parts) this.socket.write(part);
    this.socket.uncork();
    if (this.socket.writableLength > HIGH_WATER_BYTES) this.socket.pause();
  }

  close(): void {
    if (this.closing) return;
    this.flush();
    this.closing = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS).unref();
  }
}
