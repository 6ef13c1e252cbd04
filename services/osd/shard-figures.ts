/**
 * What a shard tells the OSD's main thread besides its PG states, on the same periodic round trip
 * (a heartbeat, or a scrape of /metrics): how full its store is, what its data service served
 * (an OpMeter snapshot) and how much raft work it did. Plain data: it is structured-cloned.
 */
import type { ShardStore, ShardStoreStats } from '../../kernel/contracts/store.js';
import { MAX_COMMIT_LATENCY_US } from '../monitor/capacity.js';
import { LATENCY_BUCKETS_S, meterFigures } from './op-meter.js';
import type { Shard } from './shard.js';

export interface ShardFigures {
  readonly shard: number;
  readonly store: ShardStoreStats;
  /** OpMeter.snapshot(). */
  readonly meter: Float64Array;
  readonly raft: { readonly rounds: number; readonly flushes: number; readonly nodeMessagesSent: number };
}

export function shardFigures(shard: Shard, store: ShardStore): ShardFigures {
  const { rounds, flushes, nodeMessagesSent } = shard.raftStats;
  return { shard: shard.shard, store: store.stats(), meter: shard.meter.snapshot(), raft: { rounds, flushes, nodeMessagesSent } };
}

/** The OSD's store: every shard's added up. */
export function osdStoreUsage(shards: readonly ShardFigures[]): ShardStoreStats {
  let capacityBytes = 0;
  let usedBytes = 0;
  for (const s of shards) {
    capacityBytes += s.store.capacityBytes;
    usedBytes += s.store.usedBytes;
  }
  return { capacityBytes, usedBytes };
}

/**
 * The OSD's commit latency as its heartbeats carry it: the mean time its shards' raft rounds waited
 * for their log writes to be durable since the previous sample (µs, rounded), 0 when none were
 * written meanwhile. Fed the figures of every shard (a partial survey would read as a drop).
 */
export class CommitLatency {
  private flushes = 0;
  private seconds = 0;

  sample(shards: readonly ShardFigures[]): number {
    let flushes = 0;
    let seconds = 0;
    for (const s of shards) {
      for (let b = 0; b <= LATENCY_BUCKETS_S.length; b++) flushes += meterFigures.logFlushBucket(s.meter, b);
      seconds += meterFigures.logFlushSeconds(s.meter);
    }
    const newFlushes = flushes - this.flushes;
    const newSeconds = seconds - this.seconds;
    this.flushes = flushes;
    this.seconds = seconds;
    if (newFlushes <= 0 || newSeconds < 0) return 0;
    // At least 1 (0 means no writes), at most what the heartbeat's uint32 holds: a figure the
    // monitor refused would fail the whole heartbeat and make the OSD look down.
    return Math.min(MAX_COMMIT_LATENCY_US, Math.max(1, Math.round((newSeconds / newFlushes) * 1e6)));
  }
}
