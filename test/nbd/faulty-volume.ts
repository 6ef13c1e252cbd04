/**
 * A BlockVolume with a bad region: every operation that touches it fails with a chosen
 * FastblockError code, the way a cluster reports a full pool (NO_SPACE) or an unreadable object
 * (IO_ERROR). Everything else goes to the wrapped volume.
 */
import type { BlockVolume, BlockWriteOptions } from '../../kernel/contracts/block.js';
import { FastblockError, type ErrorCode } from '../../kernel/errors.js';

export interface Fault {
  readonly offset: number;
  readonly length: number;
  readonly code: ErrorCode;
}

export class FaultyVolume implements BlockVolume {
  constructor(
    private readonly inner: BlockVolume,
    private readonly faults: readonly Fault[],
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

  private check(offset: number, length: number): void {
    for (const fault of this.faults) {
      if (offset < fault.offset + fault.length && fault.offset < offset + length) {
        throw new FastblockError(fault.code, `injected ${fault.code} at [${fault.offset}, +${fault.length})`, { offset, length });
      }
    }
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    this.check(offset, length);
    return this.inner.read(offset, length, into);
  }

  async write(offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions): Promise<void> {
    this.check(offset, data.reduce((sum, d) => sum + d.length, 0));
    return this.inner.write(offset, data, options);
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  async discard(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    return this.inner.discard(offset, length);
  }

  async writeZeroes(offset: number, length: number, options?: BlockWriteOptions): Promise<void> {
    this.check(offset, length);
    return this.inner.writeZeroes(offset, length, options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
