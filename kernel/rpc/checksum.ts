/**
 * CRC-32 (IEEE 802.3), the frame checksum. Payloads go to the fastest implementation at hand, all
 * computing the same function, so peers with different ones talk to each other:
 *
 *   kernel addon (kernel/native)  carry-less multiply folding; here ~9 GB/s at 4 KiB, ~50 at 128 KiB
 *   @node-rs/crc32                SIMD, ~4-8 GB/s; used when the addon was not built
 *   zlib                          ~2-6 GB/s; always there
 *
 * Short ranges (a frame's preamble and header) are computed in place by a table loop, which beats
 * the cost of a native call and of the view one would need.
 */
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { kernelAddon } from '../native.js';

type Crc32 = (data: Uint8Array, seed?: number) => number;

/** Below this many bytes the table loop wins over any native call. */
const NATIVE_FROM_BYTES = 64;

function loadNodeRs(): Crc32 | undefined {
  try {
    return (createRequire(import.meta.url)('@node-rs/crc32') as { crc32: Crc32 }).crc32;
  } catch {
    return undefined;
  }
}

function pick(): { readonly fast: Crc32; readonly fastFrom: number; readonly name: string } {
  if (kernelAddon?.crc32Accelerated) return { fast: kernelAddon.crc32, fastFrom: NATIVE_FROM_BYTES, name: `kernel addon (${kernelAddon.crc32Path})` };
  const nodeRs = loadNodeRs();
  // Below 512 bytes zlib's lower call overhead wins over @node-rs's SIMD.
  if (nodeRs) return { fast: nodeRs, fastFrom: 512, name: '@node-rs/crc32 (SIMD) + zlib' };
  return { fast: zlibCrc32, fastFrom: NATIVE_FROM_BYTES, name: 'zlib' };
}

const { fast, fastFrom, name } = pick();

export const checksumImplementation: string = name;

const TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c;
}

export function crc32(data: Uint8Array, seed = 0): number {
  return data.byteLength >= fastFrom ? fast(data, seed) : zlibCrc32(data, seed);
}

/** CRC-32 of data[start..end), continuing from `seed`, without making a view for short ranges. */
export function crc32Range(data: Uint8Array, start: number, end: number, seed = 0): number {
  if (end - start >= NATIVE_FROM_BYTES) return crc32(data.subarray(start, end), seed);
  let crc = ~seed;
  for (let i = start; i < end; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
