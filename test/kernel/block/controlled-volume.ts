/**
 * A BlockVolume whose writes the test completes: held ones wait in `pending` until released (in
 * any order), and a test can make the next ones fail. Applied data lands in a MemoryVolume, so a
 * test sees exactly what reached the volume and in which order (`applied`). Made with
 * `groupBytes`, it also takes writeMany (one held operation per call, kind 'many'), as the client
 * library's image does.
 */
import type { BlockVolume, BlockWrite, BlockWriteOptions } from '../../../kernel/contracts/block.js';
import { FastblockError, type ErrorCode } from '../../../kernel/errors.js';
import { MemoryVolume } from '../../support/memory-volume.js';

export interface HeldOp {
  readonly kind: 'write' | 'discard' | 'zeroes' | 'many';
  readonly offset: number;
  readonly length: number;
  /** 'many': the offsets of its writes, in the order given. */
  readonly offsets?: readonly number[];
  release(): Promise<void>;
  fail(code: ErrorCode): void;
}

export class ControlledVolume implements BlockVolume {
  readonly memory: MemoryVolume;
  hold = false;
  /** Codes the next operations fail with, one each. */
  readonly failures: ErrorCode[] = [];
  readonly pending: HeldOp[] = [];
  /** Operations as they reached the memory volume. */
  readonly applied: { kind: string; offset: number; length: number; offsets?: readonly number[] }[] = [];
  flushes = 0;
  closed = false;
  readonly writeMany?: (writes: readonly BlockWrite[]) => Promise<void>;
  readonly writeGroupBytes?: number;

  constructor(name = 'rbd/wb', size = 64 * 1024 * 1024, groupBytes?: number) {
    this.memory = new MemoryVolume(name, size);
    if (groupBytes !== undefined) {
      this.writeGroupBytes = groupBytes;
      this.writeMany = (writes) => {
        const length = writes.reduce((sum, w) => sum + w.data.reduce((n, part) => n + part.byteLength, 0), 0);
        const offsets = writes.map((w) => w.offset);
        return this.op('many', offsets[0]!, length, async () => {
          for (const w of writes) await this.memory.write(w.offset, w.data);
        }, offsets);
      };
    }
  }

  get name(): string {
    return this.memory.name;
  }

  get size(): number {
    return this.memory.size;
  }

  get blockSize(): number {
    return this.memory.blockSize;
  }

  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    return this.memory.read(offset, length, into);
  }

  write(offset: number, data: readonly Uint8Array[], _options?: BlockWriteOptions): Promise<void> {
    // The caller may reuse its buffers once the promise settles, not before: copy at apply time only.
    const length = data.reduce((sum, part) => sum + part.byteLength, 0);
    return this.op('write', offset, length, () => this.memory.write(offset, data));
  }

  discard(offset: number, length: number): Promise<void> {
    return this.op('discard', offset, length, () => this.memory.discard(offset, length));
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    return this.op('zeroes', offset, length, () => this.memory.writeZeroes(offset, length));
  }

  async flush(): Promise<void> {
    this.flushes++;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Releases every held operation, newest first (the order a volume is free to complete in). */
  async releaseAllNewestFirst(): Promise<void> {
    while (this.pending.length > 0) await this.pending[this.pending.length - 1]!.release();
  }

  private op(kind: HeldOp['kind'], offset: number, length: number, apply: () => Promise<void>, offsets?: readonly number[]): Promise<void> {
    const code = this.failures.shift();
    if (code !== undefined) return Promise.reject(new FastblockError(code, `injected ${code}`, { offset, length }));
    const run = async (): Promise<void> => {
      await apply();
      this.applied.push(offsets === undefined ? { kind, offset, length } : { kind, offset, length, offsets });
    };
    if (!this.hold) return run();
    return new Promise<void>((resolve, reject) => {
      const held: HeldOp = {
        kind,
        offset,
        length,
        ...(offsets === undefined ? {} : { offsets }),
        release: async () => {
          this.pending.splice(this.pending.indexOf(held), 1);
          await run().then(resolve, reject);
        },
        fail: (failCode) => {
          this.pending.splice(this.pending.indexOf(held), 1);
          reject(new FastblockError(failCode, `injected ${failCode}`, { offset, length }));
        },
      };
      this.pending.push(held);
    });
  }
}
