/**
 * Batches what a connection sends. Replies that complete in the same turn of the event loop leave
 * in one corked burst, which Node hands to the kernel as a single writev: at queue depth 32 that is
 * one system call for many replies instead of one each. A reply's buffers are queued together, so
 * a header is never separated from its payload.
 */
import type { Socket } from 'node:net';

export class ReplyWriter {
  private pending: Uint8Array[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private readonly flushNow = (): void => this.flush();

  constructor(private readonly socket: Socket) {}

  send(...buffers: Uint8Array[]): void {
    for (const buffer of buffers) this.pending.push(buffer);
    this.scheduled ??= setImmediate(this.flushNow);
  }

  /** True while the kernel's send buffer and Node's queue are full: stop taking new requests. */
  get congested(): boolean {
    return this.socket.writableNeedDrain;
  }

  drained(): Promise<void> {
    if (!this.congested || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** Sends what is queued now (also used before closing so no finished reply is lost). */
  flush(): void {
    if (this.scheduled) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    const buffers = this.pending;
    if (buffers.length === 0) return;
    this.pending = [];
    if (this.socket.destroyed || !this.socket.writable) return;
    this.socket.cork();
    for (const buffer of buffers) this.socket.write(buffer);
    this.socket.uncork();
  }
}
