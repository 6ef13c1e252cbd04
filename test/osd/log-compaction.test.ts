/**
 * Where a checkpoint compacts a PG's raft log: behind the durable applied index, keeping a tail,
 * by entry count or by held bytes, and never past what was applied (the regression: a log of
 * large entries whose apply lagged was compacted one entry further at every checkpoint, past
 * the applied index, and the PG stopped applying for good).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compactionPoint, type LogShape } from '../../services/osd/log-compaction.js';

const MiB = 1024 * 1024;
const bounds = { keepEntries: 100, maxBytes: 4 * MiB };

test('a small log is left alone until twice the kept tail is applied', () => {
  assert.is(compactionPoint({ applied: 200, firstIndex: 1, lastIndex: 250, heldBytes: 250 * 4096 }, bounds), undefined);
  assert.is(compactionPoint({ applied: 202, firstIndex: 1, lastIndex: 250, heldBytes: 250 * 4096 }, bounds), 102);
});

test('an oversized log keeps about half the byte bound behind applied', () => {
  // 64 entries of 256 KiB = 16 MiB held; half of 4 MiB is 8 entries.
  const at = compactionPoint({ applied: 60, firstIndex: 1, lastIndex: 64, heldBytes: 64 * 256 * 1024 }, bounds);
  assert.is(at, 52);
});

test('a log of entries larger than the byte bound keeps a few of them, not a fixed 16', () => {
  // 40 entries of 1 MiB: half of 4 MiB is 2 entries; 4 are kept, 4 MiB (16 kept 16 MiB per PG).
  assert.is(compactionPoint({ applied: 40, firstIndex: 1, lastIndex: 40, heldBytes: 40 * MiB }, bounds), 36);
});

test('never past the applied index, however oversized the log and however often asked', () => {
  // The apply lags far behind the commit: nothing beyond applied may go.
  let log: LogShape = { applied: 1, firstIndex: 1, lastIndex: 40, heldBytes: 40 * 256 * 1024 };
  for (let checkpoint = 0; checkpoint < 10; checkpoint++) {
    const at = compactionPoint(log, bounds);
    if (at !== undefined) {
      assert.ok(at <= log.applied, `checkpoint ${checkpoint}: compaction at ${at} past applied ${log.applied}`);
      log = { ...log, firstIndex: at + 1 };
    }
  }
  assert.ok(log.firstIndex <= log.applied + 1, `the log starts at ${log.firstIndex}, past applied ${log.applied} + 1`);
});

test('a leader drops what every replica holds, whatever the kept tail', () => {
  // Followers hold up to 190: entries to 190 go, although the tail would keep 100 and a small log is left alone.
  assert.is(compactionPoint({ applied: 195, firstIndex: 1, lastIndex: 200, heldBytes: 200 * 4096, replicated: 190 }, bounds), 190);
  // Not past applied, even when the followers hold more.
  assert.is(compactionPoint({ applied: 150, firstIndex: 1, lastIndex: 200, heldBytes: 200 * 4096, replicated: 200 }, bounds), 150);
  // A follower far behind (down): the bounds decide, as without it.
  assert.is(compactionPoint({ applied: 4000, firstIndex: 1, lastIndex: 4000, heldBytes: 4000 * 512, replicated: 3 }, bounds), 3900);
  // Nothing new to drop.
  assert.is(compactionPoint({ applied: 195, firstIndex: 191, lastIndex: 200, heldBytes: 10 * 4096, replicated: 190 }, bounds), undefined);
});

test('an idle follower drops its whole applied log; a busy one keeps its tail', () => {
  // Four entries of 1 MiB: the floor keeps all of them while writes go on...
  const log = { applied: 8, firstIndex: 5, lastIndex: 8, heldBytes: 4 * MiB };
  assert.is(compactionPoint(log, { keepEntries: 100, maxBytes: 1 * MiB }), undefined);
  // ...and once nothing came in since the last checkpoint, they go.
  assert.is(compactionPoint({ ...log, quiet: true }, { keepEntries: 100, maxBytes: 1 * MiB }), 8);
  // Quiet but not all applied: the tail rule only.
  assert.is(compactionPoint({ ...log, applied: 7, quiet: true }, { keepEntries: 100, maxBytes: 1 * MiB }), undefined);
});

test('randomised: the point is within [firstIndex, applied] or absent', () => {
  let seed = 7;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 10_000; i++) {
    const firstIndex = 1 + next(1000);
    const lastIndex = firstIndex - 1 + next(5000);
    const applied = Math.max(firstIndex - 1, Math.min(lastIndex, firstIndex - 1 + next(5000)));
    const heldBytes = (lastIndex - firstIndex + 1) * (1 + next(1 * MiB));
    const shape = next(3) === 0 ? { replicated: firstIndex - 1 + next(lastIndex - firstIndex + 2) } : next(2) === 0 ? { quiet: true } : {};
    const at = compactionPoint({ applied, firstIndex, lastIndex, heldBytes, ...shape }, { keepEntries: 1 + next(3000), maxBytes: 1 + next(16 * MiB) });
    if (at !== undefined) assert.ok(at >= firstIndex && at <= applied, `at ${at} outside [${firstIndex}, ${applied}]`);
  }
});

test.run();
