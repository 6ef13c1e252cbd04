/**
 * The commit latency an OSD's heartbeat carries: the mean of its shards' raft log flushes since the
 * previous heartbeat, from the shards' meters (services/osd/shard-figures.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OpMeter } from '../../services/osd/op-meter.js';
import { CommitLatency, type ShardFigures } from '../../services/osd/shard-figures.js';

const figures = (shard: number, meter: OpMeter): ShardFigures => ({
  shard,
  store: { capacityBytes: 1, usedBytes: 0 },
  meter: meter.snapshot(),
  raft: { rounds: 0, flushes: 0, nodeMessagesSent: 0 },
});

test('the mean over every shard of the flushes since the last sample, then 0 while none come', () => {
  const [a, b] = [new OpMeter(), new OpMeter()];
  const latency = new CommitLatency();
  assert.is(latency.sample([figures(0, a), figures(1, b)]), 0, 'no flush yet');
  a.logFlushed(1);
  a.logFlushed(3);
  b.logFlushed(2);
  assert.is(latency.sample([figures(0, a), figures(1, b)]), 2000, '(1 + 3 + 2) ms / 3');
  assert.is(latency.sample([figures(0, a), figures(1, b)]), 0, 'nothing new');
  b.logFlushed(0.25);
  assert.is(latency.sample([figures(0, a), figures(1, b)]), 250, 'only the new flush counts');
});

test('a figure stays within what the heartbeat carries: at least 1 µs, at most a uint32', () => {
  const meter = new OpMeter();
  const latency = new CommitLatency();
  meter.logFlushed(0.0001);
  assert.is(latency.sample([figures(0, meter)]), 1, 'a flush happened: not 0');
  meter.logFlushed(5e6);
  assert.is(latency.sample([figures(0, meter)]), 0xffff_ffff);
});

test.run();
