/**
 * CRC-32 (IEEE 802.3), the frame checksum. Short inputs (preamble + header) go to zlib's, whose
 * call costs least; payloads go to @node-rs/crc32's SIMD implementation, about twice as fast per
 * byte here. Both compute the same function, so a process without the native package (it then
 * uses zlib for everything) still talks to every other.
 */
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';

type Crc32 = (data: Uint8Array, seed?: number) => number;

/** Below this many bytes zlib's lower call overhead wins. */
const FAST_FROM_BYTES = 512;

function loadFast(): Crc32 | undefined {
  try {
    return (createRequire(import.meta.url)('@node-rs/crc32') as { crc32: Crc32 }).crc32;
  } catch {
    return undefined;
  }
}

const fast = loadFast();

export const checksumImplementation: string = fast ? '@node-rs/crc32 (SIMD) + zlib' : 'zlib';

export function crc32(data: Uint8Array, seed = 0): number {
  return fast !== undefined && data.byteLength >= FAST_FROM_BYTES ? fast(data, seed) : zlibCrc32(data, seed);
}
