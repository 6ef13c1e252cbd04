/**
 * The stable hash that places objects into PGs. Every client and OSD must compute the same value
 * for the same name forever (a change would move every object), so it is defined here, byte for
 * byte: MurmurHash3 x86_32 of the name's UTF-8 bytes with a fixed seed.
 */
import { encodeUtf8 } from '../kernel/utf8.js';

const SEED = 0x5eed_fb10;
const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

export function hashObjectName(name: string): number {
  return murmur3_32(encodeUtf8(name), SEED);
}

export function murmur3_32(bytes: Uint8Array, seed: number): number {
  let h = seed >>> 0;
  const blocks = bytes.length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = bytes.length & 3;
  if (tail > 0) {
    let k = 0;
    for (let i = tail - 1; i >= 0; i--) k = (k << 8) | bytes[blocks + i];
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The PG index of an object in a pool of `pgNum` PGs. */
export function pgOfObject(name: string, pgNum: number): number {
  return hashObjectName(name) % pgNum;
}
