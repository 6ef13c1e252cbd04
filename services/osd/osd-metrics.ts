/**
 * The OSD's Prometheus metrics. Shards count in plain numbers on their own threads (OpMeter,
 * raft stats, store stats); a scrape asks every shard for a copy over the same round trip the
 * heartbeat uses, once per scrape however many metrics read it, and adds the copies up here.
 * Nothing on the data path knows metrics exist.
 */
import { Counter, Gauge } from 'prom-client';
import type { MetricsRegistry } from '../../kernel/contracts/metrics.js';
import { BucketHistogram } from '../../kernel/metrics/bucket-histogram.js';
import { LATENCY_BUCKETS_S, OP_NAMES, RESULT_NAMES, meterFigures, sumMeters } from './op-meter.js';
import type { ShardSurvey } from './osd-service.js';
import type { ShardFigures } from './shard-figures.js';

const MUTATING_OPS = [1, 2, 3]; // write, discard, write_zeroes

interface Survey {
  /** The shards that answered this scrape (PG counts, store figures). */
  readonly shards: readonly ShardSurvey[];
  /** Every shard's latest figures, answered now or before: the sums counters are made of. */
  readonly figures: readonly ShardFigures[];
  readonly meter: Float64Array;
}

export function registerOsdMetrics(registry: MetricsRegistry, service: { survey(): Promise<ShardSurvey[]> }): void {
  // A shard that misses a scrape counts with its last figures: a counter sum that went down would
  // read as a restart to Prometheus (and rate() would jump).
  const latest = new Map<number, ShardFigures>();
  // A scrape starts every metric's collect() in one pass: they share the survey in flight.
  let pending: Promise<Survey> | undefined;
  const survey = (): Promise<Survey> =>
    (pending ??= service
      .survey()
      .then((shards) => {
        for (const s of shards) latest.set(s.figures.shard, s.figures);
        const figures = [...latest.values()];
        return { shards, figures, meter: sumMeters(figures.map((f) => f.meter)) };
      })
      .finally(() => (pending = undefined)));
  const registers = [registry];

  type Values<T extends string> = (s: Survey, set: (labels: Partial<Record<T, string>>, value: number) => void) => void;
  /** A collect() that reads the metric's values from the survey: reset, then each value recorded. */
  const fromSurvey = <M extends { reset(): void }, T extends string>(values: Values<T>, record: (metric: M, labels: Partial<Record<T, string>>, value: number) => void) =>
    async function (this: M): Promise<void> {
      const s = await survey();
      this.reset();
      values(s, (labels, value) => record(this, labels, value));
    };
  /** A counter whose value is the running total the survey reads (after a reset, inc sets it). */
  const counter = <T extends string>(name: string, help: string, labelNames: readonly T[], values: Values<T>): void => {
    new Counter<T>({ name, help, labelNames, registers, collect: fromSurvey<Counter<T>, T>(values, (m, labels, value) => m.inc(labels, value)) });
  };
  const gauge = <T extends string>(name: string, help: string, labelNames: readonly T[], values: Values<T>): void => {
    new Gauge<T>({ name, help, labelNames, registers, collect: fromSurvey<Gauge<T>, T>(values, (m, labels, value) => m.set(labels, value)) });
  };

  counter('fastblock_osd_requests_total', 'Data requests answered by this OSD, by op and result (ok, not_leader, no_space, ...)', ['op', 'result'], (s, set) => {
    for (let op = 0; op < OP_NAMES.length; op++) {
      for (let result = 0; result < RESULT_NAMES.length; result++) {
        const n = meterFigures.requests(s.meter, op, result);
        if (n > 0 || result === 0) set({ op: OP_NAMES[op], result: RESULT_NAMES[result] }, n);
      }
    }
  });
  new BucketHistogram({
    name: 'fastblock_osd_request_duration_seconds',
    help: 'Time from a data request reaching its shard to its OK reply (writes: committed on a majority and applied)',
    labelNames: ['op'],
    bounds: LATENCY_BUCKETS_S,
    registers,
    read: async () => {
      const s = await survey();
      return OP_NAMES.map((name, op) => ({
        labels: { op: name },
        counts: Array.from({ length: LATENCY_BUCKETS_S.length + 1 }, (_, b) => meterFigures.bucket(s.meter, op, b)),
        sum: meterFigures.seconds(s.meter, op),
      }));
    },
  });
  new BucketHistogram({
    name: 'fastblock_osd_raft_log_flush_duration_seconds',
    help: "Time a raft round waited for its log writes to be durable (the disk's commit latency as raft sees it); rounds that wrote no log are not counted",
    labelNames: [],
    bounds: LATENCY_BUCKETS_S,
    registers,
    read: async () => {
      const s = await survey();
      return [{ labels: {}, counts: Array.from({ length: LATENCY_BUCKETS_S.length + 1 }, (_, b) => meterFigures.logFlushBucket(s.meter, b)), sum: meterFigures.logFlushSeconds(s.meter) }];
    },
  });
  counter('fastblock_osd_read_bytes_total', 'Bytes returned by OK reads', [], (s, set) => set({}, meterFigures.bytesRead(s.meter)));
  counter('fastblock_osd_written_bytes_total', 'Bytes of OK writes (as the client sent them, once, not per replica)', [], (s, set) => set({}, meterFigures.bytesWritten(s.meter)));
  counter('fastblock_osd_raft_proposals_committed_total', 'Client mutations this OSD proposed as PG leader that committed and applied', [], (s, set) =>
    set({}, MUTATING_OPS.reduce((sum, op) => sum + meterFigures.requests(s.meter, op, 0), 0)),
  );
  counter('fastblock_osd_raft_entries_applied_total', 'Raft entries applied to this OSD\'s objects, as leader or follower', [], (s, set) => set({}, meterFigures.entriesApplied(s.meter)));
  counter('fastblock_osd_raft_rounds_total', 'Raft processing rounds of the shards', [], (s, set) => set({}, s.figures.reduce((sum, f) => sum + f.raft.rounds, 0)));
  counter('fastblock_osd_raft_flushes_total', 'Durable flushes of raft state (one per batch of appends)', [], (s, set) => set({}, s.figures.reduce((sum, f) => sum + f.raft.flushes, 0)));
  gauge('fastblock_osd_pgs', 'PG replicas on this OSD (role "hosted"), and those it leads (role "leader")', ['role'], (s, set) => {
    const reports = s.shards.flatMap((x) => x.reports);
    set({ role: 'hosted' }, reports.length);
    set({ role: 'leader' }, reports.filter((r) => r.leader).length);
  });
  gauge('fastblock_osd_store_capacity_bytes', 'Space of each shard\'s store', ['shard'], (s, set) => {
    for (const x of s.shards) set({ shard: String(x.figures.shard) }, x.figures.store.capacityBytes);
  });
  gauge('fastblock_osd_store_used_bytes', 'Space used in each shard\'s store (objects and raft logs)', ['shard'], (s, set) => {
    for (const x of s.shards) set({ shard: String(x.figures.shard) }, x.figures.store.usedBytes);
  });
  gauge('fastblock_osd_store_raft_log_bytes', "Of the used space, what each shard's raft logs hold (log rings, or the shard journal)", ['shard'], (s, set) => {
    for (const x of s.shards) if (x.figures.store.raftLogBytes !== undefined) set({ shard: String(x.figures.shard) }, x.figures.store.raftLogBytes);
  });
  gauge('fastblock_osd_store_raft_log_live_bytes', "Bytes of live records in each shard's journal (the raft logs' tails not yet compacted); compaction keeps them near the budget", ['shard'], (s, set) => {
    for (const x of s.shards) if (x.figures.store.raftLogSpace) set({ shard: String(x.figures.shard) }, x.figures.store.raftLogSpace.liveBytes);
  });
  gauge('fastblock_osd_store_raft_log_budget_bytes', "Live record bytes each shard's journal is kept within (a third of its ring): past it, the OSD checkpoints and compacts", ['shard'], (s, set) => {
    for (const x of s.shards) if (x.figures.store.raftLogSpace) set({ shard: String(x.figures.shard) }, x.figures.store.raftLogSpace.budgetBytes);
  });
  counter('fastblock_osd_store_read_cache_hits_total', 'Object reads of each shard served from its read cache (blobstore.cacheMb)', ['shard'], (s, set) => {
    for (const x of s.shards) if (x.figures.store.readCache) set({ shard: String(x.figures.shard) }, x.figures.store.readCache.hits);
  });
  counter('fastblock_osd_store_read_cache_misses_total', 'Object reads of each shard that went to the device', ['shard'], (s, set) => {
    for (const x of s.shards) if (x.figures.store.readCache) set({ shard: String(x.figures.shard) }, x.figures.store.readCache.misses);
  });
  gauge('fastblock_osd_store_read_cache_bytes', 'Object data held in each shard\'s read cache', ['shard'], (s, set) => {
    for (const x of s.shards) if (x.figures.store.readCache) set({ shard: String(x.figures.shard) }, x.figures.store.readCache.cachedBytes);
  });
  gauge('fastblock_osd_shards_answering', 'Shards that answered this scrape (fewer than osd.shards: one is stuck)', [], (s, set) => set({}, s.shards.length));
}
