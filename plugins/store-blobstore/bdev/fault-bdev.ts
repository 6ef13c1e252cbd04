/**
 * A device with a volatile write cache that can lose power. Completed writes sit in the cache
 * until flush() moves them to the medium (a MemoryBdev); crash() drops the cache — or, with
 * `tear`, lets a random subset of its pages reach the medium, which is what a torn multi-page
 * write or a reordering cache leaves behind; a durable write completed before the crash always
 * reaches it (in order with the others). After a crash every operation fails, like a device
 * that is gone; the medium then holds exactly what survived and can be loaded again.
 */
import { FastblockError, ErrorCode } from '../../../kernel/errors.js';
import { type Bdev, type Buffers, type WriteCaching, asList, checkRange, totalLength } from './bdev.js';
import type { MemoryBdev } from './memory-bdev.js';

export interface FaultOptions {
  /** Crash when this many writes, zeroes and flushes have been started (the last one fails). */
  readonly crashAtOp?: number;
  /** At the crash, each cached page reaches the medium with probability 1/2 instead of none. */
  readonly tear?: boolean;
  /** Deterministic randomness for tearing. */
  readonly random?: () => number;
  /** At the crash, exactly the cached pages (by device offset) this accepts reach the medium. */
  readonly survives?: (offset: number) => boolean;
}

interface CachedWrite {
  readonly offset: number;
  /** undefined: zeroes */
  readonly data: Uint8Array | undefined;
  readonly length: number;
  /** A durable write (RWF_DSYNC): it stays in the cache, in order, but a crash never drops it. */
  readonly durable?: boolean;
}

export class FaultBdev implements Bdev {
  readonly name: string;
  readonly sizeBytes: number;
  readonly blockSize: number;
  private cache: CachedWrite[] = [];
  /** Latest cached content per page, for reads (undefined value: zeroes). */
  private overlay = new Map<number, Uint8Array | undefined>();
  private ops = 0;
  private crashedAt: number | undefined;
  /** Cached pages that reached the medium at the crash (tearing). */
  survivedPages = 0;
  /** Fail reads / writes whose range satisfies the predicate (or all, with `true`). */
  failReads: boolean | ((offset: number, length: number) => boolean) = false;
  failWrites: boolean | ((offset: number, length: number) => boolean) = false;

  constructor(
    readonly medium: MemoryBdev,
    private readonly options: FaultOptions = {},
  ) {
    this.name = `fault(${medium.name})`;
    this.sizeBytes = medium.sizeBytes;
    this.blockSize = medium.blockSize;
  }

  get crashed(): boolean {
    return this.crashedAt !== undefined;
  }

  get opCount(): number {
    return this.ops;
  }

  async read(offset: number, buffers: Buffers): Promise<void> {
    const length = totalLength(buffers);
    this.checkAlive(offset, length);
    if (FaultBdev.matches(this.failReads, offset, length)) throw this.injected('read', offset, length);
    await this.medium.read(offset, buffers);
    this.checkAlive(offset, length);
    if (this.overlay.size === 0) return;
    let at = offset;
    for (const buffer of asList(buffers)) {
      for (let done = 0; done < buffer.length; done += this.blockSize, at += this.blockSize) {
        const page = at / this.blockSize;
        if (!this.overlay.has(page)) continue;
        const cached = this.overlay.get(page);
        if (cached === undefined) buffer.fill(0, done, done + this.blockSize);
        else buffer.set(cached, done);
      }
    }
  }

  async write(offset: number, buffers: Buffers, _cache?: WriteCaching, durable = false): Promise<void> {
    const length = totalLength(buffers);
    this.startOp(offset, length);
    if (FaultBdev.matches(this.failWrites, offset, length)) throw this.injected('write', offset, length);
    const data = new Uint8Array(length);
    let at = 0;
    for (const b of asList(buffers)) {
      data.set(b, at);
      at += b.length;
    }
    await Promise.resolve();
    this.checkAlive(offset, length);
    this.cache.push({ offset, data, length, durable });
    for (let p = 0; p < length; p += this.blockSize) this.overlay.set((offset + p) / this.blockSize, data.subarray(p, p + this.blockSize));
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.startOp(offset, length);
    if (FaultBdev.matches(this.failWrites, offset, length)) throw this.injected('write', offset, length);
    await Promise.resolve();
    this.checkAlive(offset, length);
    this.cache.push({ offset, data: undefined, length });
    for (let p = 0; p < length; p += this.blockSize) this.overlay.set((offset + p) / this.blockSize, undefined);
  }

  async flush(): Promise<void> {
    this.startOp(0, this.blockSize);
    // Only writes completed before the flush started are covered: take them now.
    const covered = this.cache;
    this.cache = [];
    await Promise.resolve();
    this.checkAlive(0, this.blockSize);
    for (const w of covered) this.apply(w, () => true);
    this.overlay = new Map();
    for (const w of this.cache) {
      for (let p = 0; p < w.length; p += this.blockSize) this.overlay.set((w.offset + p) / this.blockSize, w.data?.subarray(p, p + this.blockSize));
    }
  }

  /** Power loss now. Returns the number of cached pages that reached the medium anyway. */
  crash(): number {
    if (this.crashedAt !== undefined) return 0;
    this.crashedAt = this.ops;
    let survived = 0;
    const survives = this.options.survives;
    const torn = this.options.tear || survives !== undefined;
    const random = this.options.random ?? Math.random;
    // In order: a durable write lands over what came before it, and what came after may land over it.
    for (const w of this.cache) {
      if (w.durable) this.apply(w, () => true);
      else if (torn) {
        this.apply(w, (offset) => {
          const keep = survives !== undefined ? survives(offset) : random() < 0.5;
          if (keep) survived++;
          return keep;
        });
      }
    }
    this.cache = [];
    this.overlay = new Map();
    this.survivedPages = survived;
    return survived;
  }

  async close(): Promise<void> {
    this.cache = [];
    this.overlay = new Map();
  }

  private apply(w: CachedWrite, keepPage: (offset: number) => boolean): void {
    for (let p = 0; p < w.length; p += this.blockSize) {
      if (!keepPage(w.offset + p)) continue;
      if (w.data === undefined) this.medium.zeroNow(w.offset + p, this.blockSize);
      else this.medium.writeNow(w.offset + p, w.data.subarray(p, p + this.blockSize));
    }
  }

  private startOp(offset: number, length: number): void {
    this.checkAlive(offset, length);
    this.ops++;
    if (this.options.crashAtOp !== undefined && this.ops >= this.options.crashAtOp) {
      this.crash();
      this.checkAlive(offset, length);
    }
  }

  private checkAlive(offset: number, length: number): void {
    if (this.crashedAt !== undefined) {
      throw new FastblockError(ErrorCode.IO_ERROR, `${this.name} lost power`, { device: this.name, offset, length, crashedAtOp: this.crashedAt });
    }
    checkRange(this, offset, length);
  }

  private injected(kind: string, offset: number, length: number): FastblockError {
    return new FastblockError(ErrorCode.IO_ERROR, `injected ${kind} failure on ${this.name}`, { device: this.name, offset, length });
  }

  private static matches(rule: boolean | ((offset: number, length: number) => boolean), offset: number, length: number): boolean {
    return typeof rule === 'function' ? rule(offset, length) : rule;
  }
}
