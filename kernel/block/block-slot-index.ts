/**
 * Block number -> slot, for a cache of a fixed number of slots (the gateway's read cache, an OSD
 * store's block cache): what a Map<number, number> does for them, in one typed array. A V8 Map of
 * tens of thousands of numbers costs a hash-table walk over two arrays per lookup and a rehash
 * whenever it grows or shrinks past a bound; caches look a block up on every read and write, and a
 * profile of either daemon under 4 KiB I/O had those lookups at 3 to 5% of its CPU.
 *
 * Open addressing with linear probing; key and slot side by side (one cache line per probe), at
 * most half full (the table has a power of two of at least twice the entries it may hold), and
 * deletion by backward shift, so no tombstones and no rehash ever.
 */
import { assert } from '../errors.js';

/** Keys are stored as block + 1, so that a zeroed entry is a free one: no fill, pages taken as used. */
const EMPTY = 0;

export class BlockSlotIndex {
  /** block + 1 at 2i, slot at 2i + 1; EMPTY marks a free entry. */
  private readonly table: Float64Array;
  private readonly mask: number;
  private count = 0;

  constructor(readonly maxEntries: number) {
    assert(Number.isInteger(maxEntries) && maxEntries > 0, 'a block slot index holds at least one entry');
    let entries = 8;
    while (entries < maxEntries * 2) entries *= 2;
    this.mask = entries - 1;
    this.table = new Float64Array(entries * 2);
  }

  get size(): number {
    return this.count;
  }

  /** The slot of `block`, or -1. */
  get(block: number): number {
    const at = this.probe(block);
    return this.table[2 * at] === EMPTY ? -1 : this.table[2 * at + 1]!;
  }

  /** Maps `block` to `slot`, replacing any slot it had. */
  set(block: number, slot: number): void {
    assert(block >= 0 && Number.isSafeInteger(block + 1), 'a block number is a non-negative integer');
    const at = this.probe(block);
    if (this.table[2 * at] === EMPTY) {
      assert(this.count < this.maxEntries, 'a block slot index holds at most maxEntries');
      this.count++;
      this.table[2 * at] = block + 1;
    }
    this.table[2 * at + 1] = slot;
  }

  /** Unmaps `block`; returns the slot it had, or -1. */
  delete(block: number): number {
    const table = this.table;
    const mask = this.mask;
    let hole = this.probe(block);
    if (table[2 * hole] === EMPTY) return -1;
    const slot = table[2 * hole + 1]!;
    this.count--;
    // Backward shift: an entry after the hole moves into it unless its home lies cyclically in
    // (hole, at], where a lookup starting at its home would still find it.
    let at = hole;
    for (;;) {
      at = (at + 1) & mask;
      const key = table[2 * at]!;
      if (key === EMPTY) break;
      const home = this.home(key - 1);
      const stays = hole <= at ? hole < home && home <= at : hole < home || home <= at;
      if (stays) continue;
      table[2 * hole] = key;
      table[2 * hole + 1] = table[2 * at + 1]!;
      hole = at;
    }
    table[2 * hole] = EMPTY;
    return slot;
  }

  clear(): void {
    this.table.fill(EMPTY);
    this.count = 0;
  }

  /** Every block with its slot, in no particular order; `visit` must not change the index. */
  forEach(visit: (block: number, slot: number) => void): void {
    const table = this.table;
    for (let i = 0; i < table.length; i += 2) if (table[i] !== EMPTY) visit(table[i]! - 1, table[i + 1]!);
  }

  /** The entry holding `block`, or the free one where the probe for it ends. */
  private probe(block: number): number {
    const table = this.table;
    const stored = block + 1;
    let i = this.home(block);
    while (table[2 * i] !== stored && table[2 * i] !== EMPTY) i = (i + 1) & this.mask;
    return i;
  }

  private home(block: number): number {
    // Low and high 32 bits mixed (blocks past 2^32 occur on large images), then multiplied so
    // that runs of consecutive blocks spread over the table.
    const low = block >>> 0;
    const high = (block / 0x1_0000_0000) >>> 0;
    const h = Math.imul(low ^ Math.imul(high, 0x27d4eb2f), 0x9e3779b1);
    return (h ^ (h >>> 16)) & this.mask;
  }
}
