/**
 * The kernel's native addon (kernel/native, built by `npm run build`): the frame checksum's fast
 * path. Optional: `undefined` when it was not built or does not load, and every caller has a
 * pure-JS path computing the same function, so a daemon without it still talks to every other.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export interface KernelAddon {
  /** CRC-32 (IEEE, as zlib) of `data`, continuing from `seed`. */
  crc32(data: Uint8Array, seed?: number): number;
  /** False when the CPU lacks carry-less multiply and crc32 runs a byte table (slower than zlib). */
  readonly crc32Accelerated: boolean;
  /** "vpclmulqdq-avx512", "pclmulqdq" or "table". */
  readonly crc32Path: string;
}

const here = dirname(fileURLToPath(import.meta.url));
/** Beside this file when it runs from the sources; from dist/kernel, the same folder in the tree. */
const CANDIDATES = [join(here, 'native'), join(here, '..', '..', 'kernel', 'native')].map((dir) => join(dir, 'build', 'Release', 'kernel_native.node'));

function load(): { addon?: KernelAddon; error?: Error } {
  const require = createRequire(import.meta.url);
  let error: Error | undefined;
  for (const path of CANDIDATES) {
    try {
      return { addon: require(path) as KernelAddon };
    } catch (err) {
      error ??= err as Error;
    }
  }
  return { error };
}

const loaded = load();

export const kernelAddon: KernelAddon | undefined = loaded.addon;
/** Why the addon is missing (the first candidate's error), for a log line. */
export const kernelAddonError: Error | undefined = loaded.error;
