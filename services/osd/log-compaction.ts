/**
 * Where a checkpoint may compact a PG's raft log: behind the applied index that the store flush
 * just made durable, keeping a tail for followers that are a little behind (further behind, they
 * get a snapshot). Never past `applied`: raft hands committed entries to the state machine from
 * the log, so an entry compacted before it was applied would never be applied at all (the PG's
 * writes would then wait forever, and the replica would miss them).
 */
import { assert } from '../../kernel/errors.js';

export interface LogShape {
  /** Index the PG's objects are durable up to (applied before the checkpoint's store flush). */
  readonly applied: number;
  /** First index still in the log (snapshot index + 1). */
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** Entry bytes the log holds in memory. */
  readonly heldBytes: number;
  /**
   * Leading: the highest index every other replica holds durably (RaftGroup.replicatedIndex).
   * Entries up to it are needed by no replica: they go whatever the kept tail.
   */
  readonly replicated?: number;
  /**
   * Following, and nothing appended since the last checkpoint with all of it applied: an idle
   * PG, whose leader has had the time to bring every replica that is up to the same entries.
   */
  readonly quiet?: boolean;
}

export interface CompactionBounds {
  /** Entries kept behind `applied` when the log is small. */
  readonly keepEntries: number;
  /** A log holding more entry bytes than this is compacted even if it has few entries. */
  readonly maxBytes: number;
}

/** Entries an oversized log keeps behind applied whatever their size (a follower a step behind). */
const MIN_TAIL_ENTRIES = 4;

/** The index to snapshot at (entries up to it are dropped), or undefined to leave the log alone. */
export function compactionPoint(log: LogShape, bounds: CompactionBounds): number | undefined {
  const bounded = boundedPoint(log, bounds);
  // Idle PGs keeping their tails (4 entries of 1 MiB writes each) pinned the head of a shard
  // journal, which copied their runs forward again and again (relocations) and grew.
  const unneeded = log.replicated !== undefined ? Math.min(log.applied, log.replicated) : log.quiet && log.applied === log.lastIndex ? log.applied : undefined;
  if (unneeded === undefined || unneeded < log.firstIndex || (bounded !== undefined && bounded >= unneeded)) return bounded;
  assert(unneeded <= log.applied, `compaction at ${unneeded} past the applied index ${log.applied}`);
  return unneeded;
}

/** The point by the kept tail's bounds alone. */
function boundedPoint(log: LogShape, bounds: CompactionBounds): number | undefined {
  let keep = bounds.keepEntries;
  const oversized = log.heldBytes > bounds.maxBytes;
  if (oversized) {
    // A log of large entries keeps a tail of about half the byte bound, and a few entries at
    // least. The floor was 16: with 1 MiB writes every PG then kept 16 MiB behind applied, in
    // memory (RaftStorage reads are synchronous) and in a log ring grown to twice that.
    const average = log.heldBytes / Math.max(1, log.lastIndex - log.firstIndex + 1);
    keep = Math.max(MIN_TAIL_ENTRIES, Math.min(keep, Math.floor(bounds.maxBytes / 2 / average)));
  }
  if (!oversized && log.applied - log.firstIndex <= keep * 2) return undefined;
  const at = Math.max(log.firstIndex - 1, log.applied - keep);
  // Nothing applied past the current snapshot: there is nothing to drop.
  if (at < log.firstIndex) return undefined;
  assert(at <= log.applied, `compaction at ${at} past the applied index ${log.applied}`);
  return at;
}
