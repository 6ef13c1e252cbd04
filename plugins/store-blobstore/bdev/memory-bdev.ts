/**
 * A device in memory, sparse by page, for tests and the crash simulator. Every operation completes
 * on a later microtask, so callers see the same asynchrony as with a real device, deterministically.
 * It has no volatile cache of its own: FaultBdev adds one.
 */
import { FastblockError, ErrorCode } from '../../../kernel/errors.js';
import { type Bdev, type Buffers, asList, checkRange, totalLength } from './bdev.js';

export class MemoryBdev implements Bdev {
  readonly blockSize = 4096;
  private readonly pages = new Map<number, Uint8Array>();
  private closed = false;

  constructor(
    readonly sizeBytes: number,
    readonly name = 'memory',
  ) {}

  async read(offset: number, buffers: Buffers): Promise<void> {
    this.check(offset, totalLength(buffers));
    await Promise.resolve();
    let at = offset;
    for (const buffer of asList(buffers)) {
      for (let done = 0; done < buffer.length; ) {
        const page = Math.floor(at / this.blockSize);
        const within = at % this.blockSize;
        const n = Math.min(this.blockSize - within, buffer.length - done);
        const stored = this.pages.get(page);
        if (stored === undefined) buffer.fill(0, done, done + n);
        else buffer.set(stored.subarray(within, within + n), done);
        done += n;
        at += n;
      }
    }
  }

  async write(offset: number, buffers: Buffers): Promise<void> {
    this.check(offset, totalLength(buffers));
    await Promise.resolve();
    this.writeNow(offset, buffers);
  }

  /** Synchronous write, for FaultBdev applying its cache at a flush or a crash. */
  writeNow(offset: number, buffers: Buffers): void {
    let at = offset;
    for (const buffer of asList(buffers)) {
      for (let done = 0; done < buffer.length; ) {
        const page = Math.floor(at / this.blockSize);
        const within = at % this.blockSize;
        const n = Math.min(this.blockSize - within, buffer.length - done);
        let stored = this.pages.get(page);
        if (stored === undefined) {
          stored = new Uint8Array(this.blockSize);
          this.pages.set(page, stored);
        }
        stored.set(buffer.subarray(done, done + n), within);
        done += n;
        at += n;
      }
    }
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    await Promise.resolve();
    this.zeroNow(offset, length);
  }

  zeroNow(offset: number, length: number): void {
    for (let page = offset / this.blockSize; page < (offset + length) / this.blockSize; page++) this.pages.delete(page);
  }

  async flush(): Promise<void> {
    this.check(0, this.blockSize);
    await Promise.resolve();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Reopens a closed device with the same contents (a restart in tests). */
  reopen(): this {
    this.closed = false;
    return this;
  }

  private check(offset: number, length: number): void {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, `${this.name} is closed`, { device: this.name });
    checkRange(this, offset, length);
  }
}
