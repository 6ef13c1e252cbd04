/**
 * What a raft group reads from: its durable state as the caller last persisted it. Reads are
 * synchronous (the group is pure); writes are the caller's, driven by Ready. An implementation
 * on a DiskLog keeps the unsnapshotted tail it serves in memory (see disk-log-storage.ts).
 */
import type { Entry, HardState, Membership, Snapshot } from './types.js';

export interface InitialState {
  readonly hardState: HardState;
  /** Configuration as of the snapshot; membership entries after it are found in the log. */
  readonly membership: Membership;
}

export interface RaftStorage {
  initialState(): InitialState;
  /** Index of the first entry held; snapshot index + 1. */
  firstIndex(): number;
  lastIndex(): number;
  /** Term at index, for index in [firstIndex - 1, lastIndex]; undefined outside (compacted or absent). */
  term(index: number): number | undefined;
  /** Entries in [lo, hi), at least one when lo < hi, then up to maxBytes of data. lo >= firstIndex, hi <= lastIndex + 1. */
  entries(lo: number, hi: number, maxBytes: number): readonly Entry[];
  /** The latest snapshot, to send to a follower behind firstIndex. */
  snapshot(): Snapshot;
}

/** The write side the driver (MultiRaft, tests) uses to persist a Ready. */
export interface RaftStorageWriter extends RaftStorage {
  /** Appends entries, first dropping any held entry at or after entries[0].index. */
  append(entries: readonly Entry[]): void;
  setHardState(hs: HardState): void;
  /** Replaces everything with a received snapshot. */
  applySnapshot(snapshot: Snapshot): void;
  /** Records a snapshot of the local state machine and drops entries up to its index. */
  createSnapshot(snapshot: Snapshot): void;
}
