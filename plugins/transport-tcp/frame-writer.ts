/**
 * Writes frames to a socket, batched per tick: the first write of a tick corks the socket and a
 * microtask-later uncork hands every frame of the tick to the kernel in one writev. Payload
 * buffers are queued as they are, never joined.
 */
import type { Socket } from 'node:net';
import { encodeFrameHead, type FrameKind } from '../../kernel/rpc/frame.js';
import type { Payload } from '../../kernel/contracts/transport.js';

export class FrameWriter {
  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  constructor(
    private readonly socket: Socket,
    private readonly checksumPayload: boolean,
  ) {}

  /** Bytes accepted but not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  /** False when the socket can no longer take writes (the frame was dropped). */
  write(kind: FrameKind, method: number, requestId: number, header: Uint8Array, payload?: Payload): boolean {
    if (!this.socket.writable) return false;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(encodeFrameHead(kind, method, requestId, header, payload, this.checksumPayload));
    if (payload) for (const part of payload) if (part.byteLength > 0) this.socket.write(part);
    return true;
  }
}
