/**
 * A BlockVolume that completes each operation after a random delay, so requests pipelined on
 * one NBD connection finish, and are answered, out of order (as they do over a replicated
 * cluster). Data semantics are the wrapped volume's.
 */
import type { BlockVolume, BlockWriteOptions } from '../../kernel/contracts/block.js';

export class DelayedVolume implements BlockVolume {
  constructor(
    private readonly inner: BlockVolume,
    private readonly maxDelayMs: number,
  ) {}

  get name(): string {
    return this.inner.name;
  }

  get size(): number {
    return this.inner.size;
  }

  get blockSize(): number {
    return this.inner.blockSize;
  }

  private delay(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, Math.random() * this.maxDelayMs));
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    await this.delay();
    return this.inner.read(offset, length, into);
  }

  async write(offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions): Promise<void> {
    // Applied first, acknowledged late: a later read may see it before this write's reply is sent,
    // as with a real replicated write whose ack is in flight.
    await this.inner.write(offset, data, options);
    await this.delay();
  }

  async flush(): Promise<void> {
    await this.delay();
    return this.inner.flush();
  }

  async discard(offset: number, length: number): Promise<void> {
    await this.inner.discard(offset, length);
    await this.delay();
  }

  async writeZeroes(offset: number, length: number, options?: BlockWriteOptions): Promise<void> {
    await this.inner.writeZeroes(offset, length, options);
    await this.delay();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
