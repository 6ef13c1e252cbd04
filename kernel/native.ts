/**
 * The kernel's native addon (kernel/native, built by `npm run build`): the frame checksum's fast
 * path. Optional: `undefined` when it was not built or does not load, and every caller has a
 * pure-JS path computing the same function, so a daemon without it still talks to every other.
 */
import { loadNativeAddon } from './native-addon.js';

export interface KernelAddon {
  /** CRC-32 (IEEE, as zlib) of `data`, continuing from `seed`. */
  crc32(data: Uint8Array, seed?: number): number;
  /** False when the CPU lacks carry-less multiply and crc32 runs a byte table (slower than zlib). */
  readonly crc32Accelerated: boolean;
  /** "vpclmulqdq-avx512", "pclmulqdq" or "table". */
  readonly crc32Path: string;
  /**
   * flock(fd, LOCK_EX | LOCK_NB): 0 once held, else the errno (EWOULDBLOCK when another open file
   * description holds it). The kernel drops the lock when the descriptor closes, so a killed
   * holder never leaves a stale one. Absent in addons built before it.
   */
  readonly flockExclusive?: (fd: number) => number;
  /**
   * mmap(fd, offset, length) read-write and MAP_SHARED (pages populated): an ArrayBuffer whose
   * bytes are the file's, or the errno. Unmapped when the ArrayBuffer is collected. `offset` must be
   * page-aligned. Absent in addons built before it.
   */
  readonly mmapShared?: (fd: number, offset: number, length: number) => ArrayBuffer | number;
}

const loaded = loadNativeAddon<KernelAddon>(import.meta.url, 'kernel_native.node');

export const kernelAddon: KernelAddon | undefined = loaded.addon;
/** Why the addon is missing (the first candidate's error), for a log line. */
export const kernelAddonError: Error | undefined = loaded.error;
