/** The same seed replays the same run (same trace hash); different seeds differ. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runSeed } from './simulation.js';

test('a seed replays to the same trace hash', () => {
  for (const seed of [7, 42, 1234]) {
    const a = runSeed({ seed, durationMs: 1500, trace: true });
    const b = runSeed({ seed, durationMs: 1500, trace: true });
    assert.is(a.hash, b.hash, `seed ${seed}`);
    assert.equal(a.traceLines, b.traceLines);
    assert.equal(a.stats, b.stats);
  }
});

test('different seeds give different runs', () => {
  const hashes = new Set([1, 2, 3, 4].map((seed) => runSeed({ seed, durationMs: 1000 }).hash));
  assert.is(hashes.size, 4);
});

test.run();
