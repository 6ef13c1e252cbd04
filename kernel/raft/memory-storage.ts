/**
 * RaftStorage in memory: the reference implementation, used by tests, the simulator and the
 * benchmark. Entries are kept by reference (no payload copies); `clone` gives the simulator a
 * durable image to fall back to on a crash.
 */
import { FastblockError, ErrorCode, assert } from '../errors.js';
import type { RaftStorageWriter, InitialState } from './storage.js';
import { EMPTY_HARD_STATE, EMPTY_MEMBERSHIP } from './types.js';
import type { Entry, HardState, Membership, Snapshot } from './types.js';

export class MemoryStorage implements RaftStorageWriter {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot;
  /** ents[i] has index snap.meta.index + 1 + i. */
  private ents: Entry[] = [];

  constructor(membership: Membership = EMPTY_MEMBERSHIP) {
    this.snap = { meta: { index: 0, term: 0, membership }, data: new Uint8Array(0) };
  }

  initialState(): InitialState {
    return { hardState: this.hardState, membership: this.snap.meta.membership };
  }

  firstIndex(): number {
    return this.snap.meta.index + 1;
  }

  lastIndex(): number {
    return this.snap.meta.index + this.ents.length;
  }

  term(index: number): number | undefined {
    const offset = this.snap.meta.index;
    if (index === offset) return this.snap.meta.term;
    if (index < offset || index > offset + this.ents.length) return undefined;
    return this.ents[index - offset - 1]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    const offset = this.snap.meta.index + 1;
    if (lo < offset) throw new FastblockError(ErrorCode.INTERNAL, 'entries requested below the snapshot', { lo, firstIndex: offset });
    if (hi > this.lastIndex() + 1) assert(false, `entries up to ${hi} past last index ${this.lastIndex()}`);
    let end = lo - offset + 1;
    let bytes = this.ents[lo - offset]?.data.byteLength ?? 0;
    while (end < hi - offset) {
      bytes += this.ents[end]!.data.byteLength;
      if (bytes > maxBytes) break;
      end++;
    }
    return this.ents.slice(lo - offset, Math.min(end, hi - offset));
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    const offset = this.snap.meta.index + 1;
    if (first > this.lastIndex() + 1) assert(false, `append at ${first} leaves a gap after ${this.lastIndex()}`);
    let from = 0;
    if (first < offset) {
      // Already covered by the snapshot.
      from = offset - first;
      if (from >= entries.length) return;
    }
    this.ents.length = entries[from]!.index - offset;
    for (let i = from; i < entries.length; i++) this.ents.push(entries[i]!);
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  applySnapshot(snapshot: Snapshot): void {
    this.snap = snapshot;
    this.ents = [];
  }

  createSnapshot(snapshot: Snapshot): void {
    const { index } = snapshot.meta;
    assert(index > this.snap.meta.index && index <= this.lastIndex(), `snapshot at ${index} outside the log`);
    assert(this.term(index) === snapshot.meta.term, 'snapshot term matches the log');
    this.ents = this.ents.slice(index - this.snap.meta.index);
    this.snap = snapshot;
  }

  /** A copy that shares entries and snapshot data (immutable) but not the arrays. */
  clone(): MemoryStorage {
    const copy = new MemoryStorage();
    copy.hardState = this.hardState;
    copy.snap = this.snap;
    copy.ents = this.ents.slice();
    return copy;
  }
}
