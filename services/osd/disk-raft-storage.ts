/**
 * Durable raft storage for the PGs of one shard, on the shard's store: each PG's log in its own
 * DiskLog, its hard state, snapshot metadata and checkpointed applied index in the shard's
 * KvStore. RaftStorage reads are synchronous, so each PG keeps its log tail (everything after
 * its last snapshot) in memory too; the checkpoint compacts it.
 *
 * Writes are issued at once, in order per PG, and made durable together by flush(): every PG's
 * pending log writes, then one device flush, then the kv (only if something in it changed).
 * That is the one flush per MultiRaft round.
 */
import type { DiskLog, KvStore, PgId, ShardStore } from '../../kernel/contracts/store.js';
import { ErrorCode, FastblockError, assert } from '../../kernel/errors.js';
import { EMPTY_HARD_STATE, type Entry, type HardState, type InitialState, type Membership, type RaftStorageWriter, type Snapshot } from '../../kernel/raft/index.js';
import type { RaftStorageProvider } from './shard.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface SnapshotMetaRecord {
  index: number;
  term: number;
  voters: number[];
  learners: number[];
}

const keys = {
  hard: (pg: PgId) => `raft/${pg}/hard`,
  snap: (pg: PgId) => `raft/${pg}/snap`,
  applied: (pg: PgId) => `raft/${pg}/applied`,
  restoring: (pg: PgId) => `raft/${pg}/restoring`,
  prefix: (pg: PgId) => `raft/${pg}/`,
};

function getJson<T>(kv: KvStore, key: string): T | undefined {
  const bytes = kv.get(key);
  return bytes ? (JSON.parse(decoder.decode(bytes)) as T) : undefined;
}

function setJson(kv: KvStore, key: string, value: unknown): void {
  kv.set(key, encoder.encode(JSON.stringify(value)));
}

class PgLogStorage implements RaftStorageWriter {
  private hard: HardState;
  private snap: Snapshot;
  /** entries[i] has index snap.meta.index + 1 + i. */
  private ents: Entry[];
  /** Data bytes of `ents` (what compaction must bound: the tail lives in memory). */
  private bytes = 0;
  /** Disk writes of this PG, in issue order. */
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown;

  constructor(
    readonly pg: PgId,
    private readonly log: DiskLog,
    private readonly kv: KvStore,
    private readonly markDirty: () => void,
    /** This PG issued log writes that no flush has taken on yet. */
    private readonly markLogDirty: (storage: PgLogStorage) => void,
    /** Makes the kv durable now (coalesced with a kv flush not yet started). */
    private readonly flushKv: () => Promise<void>,
    hard: HardState,
    snap: Snapshot,
    ents: Entry[],
  ) {
    this.hard = hard;
    this.snap = snap;
    this.ents = ents;
    for (const e of ents) this.bytes += e.data.byteLength;
  }

  heldBytes(): number {
    return this.bytes;
  }

  initialState(): InitialState {
    return { hardState: this.hard, membership: this.snap.meta.membership };
  }
  firstIndex(): number {
    return this.snap.meta.index + 1;
  }
  lastIndex(): number {
    return this.snap.meta.index + this.ents.length;
  }
  term(index: number): number | undefined {
    const base = this.snap.meta.index;
    if (index === base) return this.snap.meta.term;
    if (index < base || index > base + this.ents.length) return undefined;
    return this.ents[index - base - 1].term;
  }
  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    const base = this.snap.meta.index + 1;
    if (lo < base) throw new FastblockError(ErrorCode.INTERNAL, 'entries requested below the snapshot', { pg: this.pg, lo, firstIndex: base });
    assert(hi <= this.lastIndex() + 1, `entries up to ${hi} past last index ${this.lastIndex()}`);
    let end = lo - base + 1;
    let bytes = this.ents[lo - base]?.data.byteLength ?? 0;
    while (end < hi - base) {
      bytes += this.ents[end].data.byteLength;
      if (bytes > maxBytes) break;
      end++;
    }
    return this.ents.slice(lo - base, end);
  }
  snapshot(): Snapshot {
    return this.snap;
  }

  private issue(work: () => Promise<void>): void {
    this.markLogDirty(this);
    this.chain = this.chain.then(work).catch((err) => {
      // The first failure poisons this PG's storage: flush() reports it and raft stops here.
      this.failure ??= err;
    });
  }

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0].index;
    const base = this.snap.meta.index + 1;
    assert(first >= base && first <= this.lastIndex() + 1, `append at ${first} outside [${base}, ${this.lastIndex() + 1}]`);
    for (let i = first - base; i < this.ents.length; i++) this.bytes -= this.ents[i].data.byteLength;
    this.ents.length = first - base;
    for (const e of entries) {
      this.ents.push(e);
      this.bytes += e.data.byteLength;
    }
    const records = entries.slice();
    this.issue(async () => {
      if (first <= this.log.lastIndex) await this.log.truncateSuffix(first);
      await this.log.append(records);
    });
  }

  setHardState(hs: HardState): void {
    const voteChanged = hs.term !== this.hard.term || hs.vote !== this.hard.vote;
    this.hard = hs;
    setJson(this.kv, keys.hard(this.pg), hs);
    // Term and vote must be durable before anyone hears of them. The commit index need not be:
    // a restart that finds an older one learns the newer from the leader, and never applies
    // past what it finds (see open()), so it rides along with the next kv flush.
    if (voteChanged) this.markDirty();
  }

  applySnapshot(snapshot: Snapshot): void {
    this.snap = snapshot;
    this.ents = [];
    this.bytes = 0;
    this.recordSnapshot(snapshot);
    // The objects are pulled after this (Shard.restore); until that finishes the PG is marked.
    setJson(this.kv, keys.restoring(this.pg), snapshot.meta.index);
    const index = snapshot.meta.index;
    this.issue(async () => {
      // The snapshot's record must be durable before the log it replaces is dropped.
      await this.flushKv();
      if (this.log.lastIndex >= this.log.firstIndex) await this.log.truncateSuffix(this.log.firstIndex);
      await this.log.trimPrefix(index + 1);
    });
  }

  createSnapshot(snapshot: Snapshot): void {
    const index = snapshot.meta.index;
    if (index <= this.snap.meta.index) return;
    assert(index <= this.lastIndex(), 'snapshot past the last index');
    const dropped = this.ents.slice(0, index - this.snap.meta.index);
    for (const e of dropped) this.bytes -= e.data.byteLength;
    this.ents = this.ents.slice(index - this.snap.meta.index);
    this.snap = snapshot;
    this.recordSnapshot(snapshot);
    this.issue(async () => {
      await this.flushKv();
      await this.log.trimPrefix(index + 1);
    });
  }

  private recordSnapshot(snapshot: Snapshot): void {
    const record: SnapshotMetaRecord = { index: snapshot.meta.index, term: snapshot.meta.term, voters: [...snapshot.meta.membership.voters], learners: [...snapshot.meta.membership.learners] };
    setJson(this.kv, keys.snap(this.pg), record);
    this.markDirty();
  }

  async settle(): Promise<void> {
    await this.chain;
    if (this.failure) throw this.failure;
  }
}

export class DiskRaftStorage implements RaftStorageProvider {
  private readonly open_ = new Map<PgId, PgLogStorage>();
  private kvDirty = false;
  /** PGs with log writes issued since the flush that last took them on. */
  private readonly dirtyLogs = new Set<PgLogStorage>();
  /** Flushes that took on log writes and have not finished: a flush that starts later waits for them too. */
  private readonly flushing = new Set<Promise<void>>();
  /** kv flushes one at a time (a round and a checkpoint may flush at once). */
  private kvFlushing: Promise<void> = Promise.resolve();
  /** A kv flush queued behind the running one: later requests join it. */
  private kvQueued: Promise<void> | undefined;

  constructor(private readonly store: ShardStore) {}

  has(pg: PgId): boolean {
    return this.open_.has(pg) || this.store.kv.get(keys.snap(pg)) !== undefined || this.store.kv.get(keys.hard(pg)) !== undefined;
  }

  /** PGs with raft state on this shard (to reopen after a restart). */
  hosted(): PgId[] {
    const pgs = new Set<PgId>();
    for (const key of this.store.kv.keys('raft/')) pgs.add(key.split('/')[1]);
    return [...pgs];
  }

  /** Snapshot index whose object pull did not finish before a crash, if any. */
  private restoring(pg: PgId): number | undefined {
    return getJson<number>(this.store.kv, keys.restoring(pg));
  }

  restored(pg: PgId): void {
    this.store.kv.delete(keys.restoring(pg));
    this.kvDirty = true;
  }

  async open(pg: PgId, membership: Membership): Promise<{ storage: RaftStorageWriter; applied: number; restoring?: number }> {
    const kv = this.store.kv;
    const log = await this.store.diskLog(pg);
    const isNew = !this.has(pg);
    const snapRecord = getJson<SnapshotMetaRecord>(kv, keys.snap(pg));
    const snap: Snapshot = snapRecord
      ? { meta: { index: snapRecord.index, term: snapRecord.term, membership: { voters: snapRecord.voters, learners: snapRecord.learners } }, data: new Uint8Array(0) }
      : { meta: { index: 0, term: 0, membership }, data: new Uint8Array(0) };
    let hard = getJson<HardState>(kv, keys.hard(pg)) ?? EMPTY_HARD_STATE;
    let ents: Entry[] = [];
    const from = snap.meta.index + 1;
    if (!isNew && log.lastIndex >= from) {
      assert(log.firstIndex <= from, `PG ${pg}: log starts at ${log.firstIndex}, after its snapshot ${snap.meta.index}`);
      ents = (await log.read(from, log.lastIndex + 1)).map((r) => ({ index: r.index, term: r.term, type: r.type, data: r.data }));
    } else if (isNew && log.lastIndex >= log.firstIndex) {
      await log.truncateSuffix(log.firstIndex);
    }
    // The kv may hold a commit index past the log that reached the disk (it is flushed on its own
    // schedule); those entries are committed on a majority elsewhere, and this replica re-learns them.
    const durableLast = snap.meta.index + ents.length;
    if (hard.commit > durableLast) hard = { ...hard, commit: durableLast };
    const storage = new PgLogStorage(pg, log, kv, () => (this.kvDirty = true), (s) => this.dirtyLogs.add(s), () => this.flushKv(), hard, snap, ents);
    if (isNew) {
      // The first configuration must be durable before the group acts on it.
      storage.setHardState(EMPTY_HARD_STATE);
      const record: SnapshotMetaRecord = { index: 0, term: 0, voters: [...membership.voters], learners: [...membership.learners] };
      setJson(kv, keys.snap(pg), record);
      this.kvDirty = true;
    }
    this.open_.set(pg, storage);
    const applied = Math.min(getJson<number>(kv, keys.applied(pg)) ?? snap.meta.index, hard.commit);
    return { storage, applied: Math.max(applied, snap.meta.index), restoring: this.restoring(pg) };
  }

  async remove(pg: PgId): Promise<void> {
    const storage = this.open_.get(pg);
    this.open_.delete(pg);
    if (storage) this.dirtyLogs.delete(storage);
    await storage?.settle().catch(() => undefined);
    for (const key of this.store.kv.keys(keys.prefix(pg))) this.store.kv.delete(key);
    this.kvDirty = true;
    await this.store.removeDiskLog(pg);
  }

  heldBytes(pg: PgId): number {
    return this.open_.get(pg)?.heldBytes() ?? 0;
  }

  checkpoint(pg: PgId, applied: number): void {
    if (!this.open_.has(pg)) return;
    setJson(this.store.kv, keys.applied(pg), applied);
    this.kvDirty = true;
  }

  /**
   * Makes every log write issued so far durable with one device flush (none when nothing was
   * written: a round that only commits or applies), then the kv if it changed. The round's flush
   * and the checkpoint's may run at once: writes an earlier flush took on are durable only when
   * it is, so a flush also waits for the ones still running. Costs what the dirty PGs cost, not
   * what the shard hosts.
   */
  async flush(): Promise<void> {
    const earlier = this.flushing.size === 0 ? undefined : [...this.flushing];
    if (this.dirtyLogs.size > 0) {
      const dirty = [...this.dirtyLogs];
      this.dirtyLogs.clear();
      const done = (async () => {
        await Promise.all(dirty.map((s) => s.settle()));
        await this.store.flush();
      })();
      const finished = (): void => void this.flushing.delete(done);
      this.flushing.add(done);
      done.then(finished, finished);
      await done;
    }
    if (earlier) await Promise.all(earlier);
    if (this.kvDirty) await this.flushKv();
    else await this.kvFlushing;
  }

  /** Persists the kv as it is now: joins a queued kv flush (it has not started, so it takes this state too). */
  private flushKv(): Promise<void> {
    this.kvDirty = false;
    if (!this.kvQueued) {
      const queued = this.kvFlushing.then(() => {
        if (this.kvQueued === queued) this.kvQueued = undefined;
        return this.store.kv.flush();
      });
      this.kvQueued = queued;
      this.kvFlushing = queued;
    }
    return this.kvQueued;
  }


}
