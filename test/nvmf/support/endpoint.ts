/**
 * A target connection driven in-process: bytes in through receive(), PDUs out decoded as they are
 * sent. No sockets, so the golden-trace replay and the fuzzer run at memory speed.
 */
import { NvmeTcpConnection, type Wire } from '../../../plugins/frontend-nvmf/tcp/connection.js';
import type { NvmfTarget } from '../../../plugins/frontend-nvmf/target.js';
import { C2HDecoder, type C2HPdu } from './host-pdu.js';

export class Endpoint {
  readonly decoder = new C2HDecoder();
  readonly out: C2HPdu[] = [];
  /** The target closed the connection (after a C2HTermReq, a H2CTermReq, or a teardown). */
  closed = false;
  readonly connection: NvmeTcpConnection;
  private waiters: (() => void)[] = [];

  constructor(target: NvmfTarget) {
    const wire: Wire = {
      send: (parts) => {
        if (this.closed) throw new Error('target sent on a closed connection');
        for (const part of parts) this.out.push(...this.decoder.push(part));
        for (const w of this.waiters.splice(0)) w();
      },
      close: () => {
        if (this.closed) return;
        this.closed = true;
        // As a socket would: the close comes back as an event, after the current turn.
        queueMicrotask(() => this.connection.closed());
      },
    };
    this.connection = new NvmeTcpConnection(wire, target, target.limits, target.logger);
  }

  receive(bytes: Uint8Array): void {
    this.connection.receive(bytes);
  }

  /** The host side goes away. */
  hangUp(): void {
    if (!this.closed) {
      this.closed = true;
      this.connection.closed();
    }
  }

  async waitFor(count: number, timeoutMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.out.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} PDUs, have ${this.out.length}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }
}

/** Lets every promise chain started by the last receive() run to its end (memory volumes never wait). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
