/**
 * The devices every store suite runs on: the memory bdev, the memory bdev behind a small read
 * cache (CachedBdev, emptied at every reopen as a restart would), and a file bdev with io_uring
 * and with the fs fallback. FASTBLOCK_STORE_DEVICES=memory,cached,uring,fs narrows the list.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bdev } from '../../plugins/store-blobstore/bdev/bdev.js';
import { CachedBdev } from '../../plugins/store-blobstore/bdev/cached-bdev.js';
import { FileBdev, uringUnavailableReason } from '../../plugins/store-blobstore/bdev/file-bdev.js';
import { MemoryBdev } from '../../plugins/store-blobstore/bdev/memory-bdev.js';

export type DeviceKind = 'memory' | 'cached' | 'uring' | 'fs';

/** One device that survives reopening (a restart), until destroy(). */
export interface TestDevice {
  readonly kind: DeviceKind;
  /** Opens the device (closing the previous opening: a restart); the same bytes every time. */
  open(): Bdev;
  destroy(): void;
  /** The file behind a file device. */
  readonly path?: string;
}

const wanted = (process.env.FASTBLOCK_STORE_DEVICES ?? 'memory,cached,uring,fs').split(',');

export function deviceKinds(): DeviceKind[] {
  const kinds: DeviceKind[] = [];
  for (const kind of ['memory', 'cached', 'uring', 'fs'] as const) {
    if (!wanted.includes(kind)) continue;
    if (kind === 'uring') {
      const reason = uringUnavailableReason();
      if (reason !== undefined) {
        console.log(`SKIP uring device: ${reason}`);
        continue;
      }
    }
    kinds.push(kind);
  }
  return kinds;
}

let scratch: string | undefined;

export function scratchDir(): string {
  if (scratch === undefined) {
    scratch = mkdtempSync(join(tmpdir(), 'fastblock-store-'));
    const dir = scratch;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return scratch;
}

let counter = 0;

export function makeDevice(kind: DeviceKind, sizeBytes: number): TestDevice {
  if (kind === 'memory') {
    const memory = new MemoryBdev(sizeBytes);
    return { kind, open: () => memory.reopen(), destroy: () => undefined };
  }
  if (kind === 'cached') {
    // 64 blocks: small enough that every suite's working set also exercises eviction.
    const memory = new MemoryBdev(sizeBytes);
    return { kind, open: () => new CachedBdev(memory.reopen(), 64 * 4096), destroy: () => undefined };
  }
  const path = join(scratchDir(), `dev-${process.pid}-${counter++}.img`);
  let current: FileBdev | undefined;
  return {
    kind,
    path,
    open: () => {
      // FileBdev.close() releases the descriptor (and its lock) synchronously.
      void current?.close();
      current = FileBdev.open({ path, sizeBytes, create: true, io: kind });
      return current;
    },
    destroy: () => {
      void current?.close();
      rmSync(path, { force: true });
    },
  };
}

/** Deterministic bytes for (seed, length). */
export function pattern(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export async function rejectsWith(work: Promise<unknown> | (() => unknown), code: string): Promise<Error> {
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (err) {
    if ((err as { code?: string }).code !== code) throw new Error(`expected ${code}, got ${(err as { code?: string }).code}: ${(err as Error).message}`);
    return err as Error;
  }
  throw new Error(`expected ${code}, but it succeeded`);
}
