/**
 * CRC-32 (IEEE 802.3), the frame checksum. Payloads go to @node-rs/crc32's SIMD implementation,
 * about twice as fast per byte as zlib's here; short ranges (a frame's preamble and header) are
 * computed in place by a table loop, which beats the cost of a native call and of the view one
 * would need. All compute the same function, so a process without the native package (it then
 * uses zlib) still talks to every other.
 */
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';

type Crc32 = (data: Uint8Array, seed?: number) => number;

/** Below this many bytes zlib's lower call overhead wins over the SIMD one. */
const FAST_FROM_BYTES = 512;
/** Below this many bytes the table loop wins over any native call. */
const NATIVE_FROM_BYTES = 64;

function loadFast(): Crc32 | undefined {
  try {
    return (createRequire(import.meta.url)('@node-rs/crc32') as { crc32: Crc32 }).crc32;
  } catch {
    return undefined;
  }
}

const fast = loadFast();

export const checksumImplementation: string = fast ? '@node-rs/crc32 (SIMD) + zlib' : 'zlib';

const TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c;
}

export function crc32(data: Uint8Array, seed = 0): number {
  return fast !== undefined && data.byteLength >= FAST_FROM_BYTES ? fast(data, seed) : zlibCrc32(data, seed);
}

/** CRC-32 of data[start..end), continuing from `seed`, without making a view for short ranges. */
export function crc32Range(data: Uint8Array, start: number, end: number, seed = 0): number {
  if (end - start >= NATIVE_FROM_BYTES) return crc32(data.subarray(start, end), seed);
  let crc = ~seed;
  for (let i = start; i < end; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
