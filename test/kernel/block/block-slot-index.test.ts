// The caches' block -> slot index against a Map under random traffic: inserts, updates, deletes
// (the backward shift), tables small enough to wrap and cluster, blocks past 2^32.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockSlotIndex } from '../../../kernel/block/block-slot-index.js';

function lcg(seed: number): () => number {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 0x1_0000_0000;
  };
}

test('get, set, delete and forEach agree with a Map under random traffic', () => {
  for (const [seed, maxEntries, universe] of [
    [1, 4, 16],
    [2, 64, 200],
    [3, 1000, 5000],
    [4, 300, 2 ** 40],
  ] as const) {
    const random = lcg(seed);
    const index = new BlockSlotIndex(maxEntries);
    const model = new Map<number, number>();
    // Near 2^32 and 2^40 too: the high bits take part in the hash.
    const pick = (): number => (universe > 2 ** 32 ? 2 ** 32 - 50 + Math.floor(random() * 100) + (random() < 0.5 ? 0 : 2 ** 39) : Math.floor(random() * universe));
    for (let step = 0; step < 20000; step++) {
      const block = pick();
      const r = random();
      if (r < 0.45 && (model.size < maxEntries || model.has(block))) {
        const slot = Math.floor(random() * 1e6);
        index.set(block, slot);
        model.set(block, slot);
      } else if (r < 0.8) {
        assert.is(index.delete(block), model.get(block) ?? -1, `seed ${seed} step ${step}: delete ${block}`);
        model.delete(block);
      } else {
        assert.is(index.get(block), model.get(block) ?? -1, `seed ${seed} step ${step}: get ${block}`);
      }
      assert.is(index.size, model.size);
      if (step % 997 === 0) {
        for (const [b, slot] of model) assert.is(index.get(b), slot, `seed ${seed} step ${step}: every entry still found`);
        const seen = new Map<number, number>();
        index.forEach((b, slot) => seen.set(b, slot));
        assert.equal(seen, model);
      }
    }
  }
});

test('a full index refuses one more block but takes updates; clear empties it', () => {
  const index = new BlockSlotIndex(3);
  index.set(10, 0);
  index.set(11, 1);
  index.set(12, 2);
  index.set(11, 7);
  assert.is(index.get(11), 7);
  assert.throws(() => index.set(13, 3), /at most maxEntries/);
  assert.throws(() => index.set(-1, 3), /non-negative integer/);
  index.clear();
  assert.is(index.size, 0);
  assert.is(index.get(10), -1);
  index.set(13, 3);
  assert.is(index.get(13), 3);
});

test.run();
