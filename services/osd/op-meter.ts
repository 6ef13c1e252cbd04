/**
 * What a shard's data service has served, counted in plain numbers on the shard's own thread: no
 * labels, no maps, no allocation per request, a few additions into one Float64Array. The main
 * thread gets a copy when it asks (a heartbeat, a scrape of /metrics) and turns it into Prometheus
 * metrics (osd-metrics.ts); the data path never waits for it.
 *
 * The op and the result are read from the first bytes of the request and reply headers, which the
 * data protocol writes first (client/data-protocol.ts): no second decode. A request whose header
 * starts otherwise (a foreign client ordering fields differently) is counted as op "other".
 */
import type { OutboundReply } from '../../kernel/contracts/transport.js';

/** DataOp 1..4, then anything else (WRITE_EXTENTS, 5, counts as a write: requestOp). */
export const OP_NAMES = ['read', 'write', 'discard', 'write_zeroes', 'other'] as const;
/** DataStatus 0..6, then anything else. */
export const RESULT_NAMES = ['ok', 'not_leader', 'stale_epoch', 'no_space', 'timeout', 'invalid_argument', 'io_error', 'other'] as const;
/** Upper bounds of the latency buckets, in seconds (+Inf is implied). */
export const LATENCY_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

const OPS = OP_NAMES.length;
const RESULTS = RESULT_NAMES.length;
const BUCKETS = LATENCY_BUCKETS_S.length + 1;
const BOUNDS_MS = LATENCY_BUCKETS_S.map((s) => s * 1000);

/** Offsets into the snapshot array. */
export const METER_LAYOUT = {
  /** [op * RESULTS + result]: requests. */
  requests: 0,
  /** [op * BUCKETS + bucket]: OK requests by latency bucket (not cumulative). */
  buckets: OPS * RESULTS,
  /** [op]: seconds spent on OK requests. */
  seconds: OPS * RESULTS + OPS * BUCKETS,
  bytesRead: OPS * RESULTS + OPS * BUCKETS + OPS,
  bytesWritten: OPS * RESULTS + OPS * BUCKETS + OPS + 1,
  entriesApplied: OPS * RESULTS + OPS * BUCKETS + OPS + 2,
  /** [bucket]: raft log flushes by duration bucket (not cumulative). */
  logFlushBuckets: OPS * RESULTS + OPS * BUCKETS + OPS + 3,
  /** Seconds raft rounds waited for their log writes to be durable. */
  logFlushSeconds: OPS * RESULTS + OPS * BUCKETS + OPS + 3 + BUCKETS,
  length: OPS * RESULTS + OPS * BUCKETS + OPS + 4 + BUCKETS,
} as const;

const bucketOf = (ms: number): number => {
  let bucket = 0;
  while (bucket < BOUNDS_MS.length && ms > BOUNDS_MS[bucket]) bucket++;
  return bucket;
};

const VARINT_FIELD_1 = 0x08;
const OP_WRITE = 2;

const OP_WRITE_EXTENTS = 5;

/** The op's index in OP_NAMES, from a data request header. A WRITE_EXTENTS is a write, its payload the bytes written. */
export function requestOp(header: Uint8Array): number {
  if (header.length < 2 || header[0] !== VARINT_FIELD_1) return OPS - 1;
  const op = header[1];
  return op >= 1 && op <= 4 ? op - 1 : op === OP_WRITE_EXTENTS ? OP_WRITE - 1 : OPS - 1;
}

export class OpMeter {
  private readonly counts = new Float64Array(METER_LAYOUT.length);

  /**
   * One data request answered: `op` from requestOp(), `payloadBytes` the request's payload,
   * `startedMs` performance.now() when it arrived.
   */
  record(op: number, payloadBytes: number, reply: OutboundReply, startedMs: number): void {
    const header = reply.header;
    // An OK reply leaves its status out (proto3 default), so an empty or status-less header is OK.
    const result = header.length > 1 && header[0] === VARINT_FIELD_1 ? Math.min(header[1], RESULTS - 1) : 0;
    const counts = this.counts;
    counts[METER_LAYOUT.requests + op * RESULTS + result]++;
    if (result !== 0) return;
    const ms = performance.now() - startedMs;
    counts[METER_LAYOUT.buckets + op * BUCKETS + bucketOf(ms)]++;
    counts[METER_LAYOUT.seconds + op] += ms / 1000;
    if (op === OP_WRITE - 1) counts[METER_LAYOUT.bytesWritten] += payloadBytes;
    else if (op === 0 && reply.payload) for (const part of reply.payload) counts[METER_LAYOUT.bytesRead] += part.length;
  }

  /** Raft entries this shard applied to its objects (as leader or follower). */
  applied(entries: number): void {
    this.counts[METER_LAYOUT.entriesApplied] += entries;
  }

  /**
   * A raft round's log writes became durable `ms` after the round asked: the disk's commit latency
   * as raft sees it (Ceph's commit_latency). Rounds that wrote no log are not counted.
   */
  logFlushed(ms: number): void {
    this.counts[METER_LAYOUT.logFlushBuckets + bucketOf(ms)]++;
    this.counts[METER_LAYOUT.logFlushSeconds] += ms / 1000;
  }

  /** A copy, for another thread. */
  snapshot(): Float64Array {
    return this.counts.slice();
  }
}

/** Reading a snapshot (or the sum of several). */
export const meterFigures = {
  requests: (m: Float64Array, op: number, result: number): number => m[METER_LAYOUT.requests + op * RESULTS + result],
  bucket: (m: Float64Array, op: number, bucket: number): number => m[METER_LAYOUT.buckets + op * BUCKETS + bucket],
  seconds: (m: Float64Array, op: number): number => m[METER_LAYOUT.seconds + op],
  bytesRead: (m: Float64Array): number => m[METER_LAYOUT.bytesRead],
  bytesWritten: (m: Float64Array): number => m[METER_LAYOUT.bytesWritten],
  entriesApplied: (m: Float64Array): number => m[METER_LAYOUT.entriesApplied],
  logFlushBucket: (m: Float64Array, bucket: number): number => m[METER_LAYOUT.logFlushBuckets + bucket],
  logFlushSeconds: (m: Float64Array): number => m[METER_LAYOUT.logFlushSeconds],
};

/** The shards' snapshots added up. */
export function sumMeters(meters: readonly Float64Array[]): Float64Array {
  const total = new Float64Array(METER_LAYOUT.length);
  for (const m of meters) for (let i = 0; i < total.length; i++) total[i] += m[i] ?? 0;
  return total;
}
