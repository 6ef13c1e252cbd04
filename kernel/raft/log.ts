/**
 * The log as a group sees it: what storage holds, plus the unstable tail (entries and possibly a
 * received snapshot) that the caller has not yet persisted. Indices: committed <= lastIndex;
 * applied <= committed. Committed entries may be handed out before they are stable because the
 * driver persists a Ready's entries before applying its committed entries.
 */
import { FastblockError, ErrorCode, assert } from '../errors.js';
import type { RaftStorage } from './storage.js';
import type { Entry, Snapshot } from './types.js';

/** What nextCommitted returns when nothing is to apply (read-only to its callers). */
const NO_ENTRIES: readonly Entry[] = [];

export class RaftLog {
  /** Entries not yet persisted; unstable[i] has index `offset + i`. */
  private unstable: Entry[] = [];
  private offset: number;
  /** A received snapshot not yet persisted. */
  pendingSnapshot: Snapshot | undefined;
  committed: number;
  applied: number;

  constructor(
    readonly storage: RaftStorage,
    committed: number,
    applied: number,
  ) {
    this.offset = storage.lastIndex() + 1;
    this.committed = committed;
    this.applied = Math.max(applied, storage.firstIndex() - 1);
    assert(this.committed <= storage.lastIndex(), 'stored commit index within the stored log');
  }

  firstIndex(): number {
    if (this.pendingSnapshot) return this.pendingSnapshot.meta.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstable.length > 0) return this.offset + this.unstable.length - 1;
    if (this.pendingSnapshot) return this.pendingSnapshot.meta.index;
    return this.storage.lastIndex();
  }

  term(index: number): number | undefined {
    if (index >= this.offset) {
      const e = this.unstable[index - this.offset];
      return e === undefined ? undefined : e.term;
    }
    if (this.pendingSnapshot) return index === this.pendingSnapshot.meta.index ? this.pendingSnapshot.meta.term : undefined;
    return this.storage.term(index);
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert(t !== undefined, 'the last index has a term');
    return t;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Appends entries whose first index is at most lastIndex + 1, replacing the conflicting tail. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    // Hot-path invariants build their message only when they fail (a template literal is eager).
    if (first <= this.committed) assert(false, `append at ${first} would overwrite committed ${this.committed}`);
    if (first === this.offset + this.unstable.length) {
      for (let i = 0; i < entries.length; i++) this.unstable.push(entries[i]!);
    } else if (first <= this.offset) {
      // Replaces part of the stable log: the storage keeps it until the driver persists the replacement.
      this.offset = first;
      this.unstable = entries.slice();
    } else {
      this.unstable.length = first - this.offset;
      for (let i = 0; i < entries.length; i++) this.unstable.push(entries[i]!);
    }
  }

  /**
   * Position in `entries` of the first entry whose term differs from ours (or that we lack);
   * entries.length when all are already here. A duplicated or reordered append therefore never
   * truncates what a newer one wrote.
   */
  findConflict(entries: readonly Entry[]): number {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (this.term(e.index) !== e.term) return i;
    }
    return entries.length;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, with its term: where a log that has
   * `term` at `index` could first match ours (fast backtracking, etcd's findConflictByTerm).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex());
    for (;;) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
      i--;
    }
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) {
      throw new FastblockError(ErrorCode.INTERNAL, 'commit index past the last index', { commit: index, lastIndex: this.lastIndex() });
    }
    this.committed = index;
  }

  appliedTo(index: number): void {
    if (index > this.committed || index < this.applied) assert(false, `applied ${index} outside [${this.applied}, ${this.committed}]`);
    this.applied = index;
  }

  unstableEntries(): readonly Entry[] {
    return this.unstable;
  }

  hasNextCommitted(): boolean {
    return this.committed > this.applied && this.applied + 1 >= this.firstIndex();
  }

  /** Committed entries not yet applied, up to maxBytes (at least one). */
  nextCommitted(maxBytes: number): readonly Entry[] {
    if (!this.hasNextCommitted()) return NO_ENTRIES;
    return this.slice(this.applied + 1, this.committed + 1, maxBytes) ?? NO_ENTRIES;
  }

  /** Entries in [lo, hi), at least one then up to maxBytes; undefined when lo was compacted. */
  slice(lo: number, hi: number, maxBytes: number): readonly Entry[] | undefined {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) return undefined;
    if (hi > this.lastIndex() + 1) assert(false, `slice to ${hi} past last index ${this.lastIndex()}`);
    if (lo >= this.offset) return this.takeUnstable(lo, hi, maxBytes);
    const stableHi = Math.min(hi, this.offset);
    const stable = this.storage.entries(lo, stableHi, maxBytes);
    if (stable.length < stableHi - lo || hi <= this.offset) return stable;
    let bytes = 0;
    for (const e of stable) bytes += e.data.byteLength;
    if (bytes >= maxBytes) return stable;
    return stable.concat(this.takeUnstable(this.offset, hi, maxBytes - bytes, true));
  }

  private takeUnstable(lo: number, hi: number, maxBytes: number, allowNone = false): Entry[] {
    const from = lo - this.offset;
    let end = from;
    let bytes = 0;
    const last = hi - this.offset;
    while (end < last) {
      bytes += this.unstable[end]!.data.byteLength;
      if (bytes > maxBytes && (end > from || allowNone)) break;
      end++;
    }
    return this.unstable.slice(from, end);
  }

  /** The driver persisted entries up to `index` (with `term`); they leave the unstable tail. */
  stableTo(index: number, term: number): boolean {
    const i = index - this.offset;
    if (i < 0 || i >= this.unstable.length || this.unstable[i]!.term !== term) return false;
    this.unstable = i + 1 === this.unstable.length ? [] : this.unstable.slice(i + 1);
    this.offset = index + 1;
    return true;
  }

  stableSnapshotTo(index: number): void {
    if (this.pendingSnapshot?.meta.index === index) this.pendingSnapshot = undefined;
  }

  /** Replaces the whole log with a received snapshot. */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.meta.index;
    this.offset = snapshot.meta.index + 1;
    this.unstable = [];
    this.pendingSnapshot = snapshot;
  }

  /** The snapshot a lagging follower needs: the pending one if any, else the stored one. */
  snapshot(): Snapshot {
    return this.pendingSnapshot ?? this.storage.snapshot();
  }
}
