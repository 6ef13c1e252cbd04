/**
 * Durable raft storage for the PGs of one shard, on the shard's store: each PG's log in its own
 * DiskLog, its hard state, snapshot metadata and checkpointed applied index in the shard's
 * KvStore. RaftStorage reads are synchronous, so each PG keeps its log tail (everything after
 * its last snapshot) in memory too; the checkpoint compacts it.
 *
 * Writes are issued at once, in order per PG, and made durable together by flush(): every PG's
 * pending log writes, then one device flush, then the kv (only if something in it changed).
 * That is the one flush per MultiRaft round. With a store that writes its logs durably (a shard
 * journal), the round waits for its log writes alone: object writes applied meanwhile reach the
 * medium at the next checkpoint's flush, and the log replays them until then.
 */
import type { DiskLog, KvStore, PgId, ShardStore } from '../../kernel/contracts/store.js';
import { ErrorCode, FastblockError, assert } from '../../kernel/errors.js';
import { EMPTY_HARD_STATE, type Entry, type HardState, type InitialState, type Membership, type RaftStorageWriter, type Snapshot } from '../../kernel/raft/index.js';
import type { RaftStorageProvider } from './shard.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const RESOLVED = Promise.resolve();
const nothing = (): void => undefined;

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

/**
 * What a flush waits for: every write its PGs had issued when it began. Each PG with writes still
 * running counts once; it hands the barrier on as its writes finish (they finish in order, one
 * chain per PG). One promise per flush, however many PGs it covers.
 */
class WriteBarrier {
  /** PGs whose writes the barrier still waits for. */
  remaining = 0;
  failure: unknown;
  readonly promise: Promise<void>;
  private resolve!: () => void;
  private reject!: (err: unknown) => void;

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** A PG it waited for is done (with its first failure, if it has one). */
  passed(failure: unknown): void {
    this.failure ??= failure;
    if (--this.remaining === 0) this.settle();
  }

  settle(): void {
    if (this.failure === undefined) this.resolve();
    else this.reject(this.failure);
  }
}

class PgLogStorage implements RaftStorageWriter {
  private hard: HardState;
  private snap: Snapshot;
  /** entries[i] has index snap.meta.index + 1 + i. */
  private ents: Entry[];
  /** Data bytes of `ents` (what compaction must bound: the tail lives in memory). */
  private bytes = 0;
  /** Disk writes of this PG, in issue order; it never rejects (a failure is kept in `failure`). */
  private chain: Promise<void> = Promise.resolve();
  /** Writes in the chain not yet finished: with none, a plain append goes straight to the log. */
  private pending = 0;
  private failure: unknown;
  /** Writes issued and finished so far (they finish in issue order). */
  private issued = 0;
  private finished = 0;
  /** Flushes waiting for this PG's writes, and how many writes each waits for (parallel arrays, oldest first). */
  private readonly barriers: WriteBarrier[] = [];
  private readonly barrierTargets: number[] = [];
  /** The kv holds an older commit index than `hard` (term and vote are always current there). */
  private hardStale = false;
  private readonly settled = (): void => {
    this.pending--;
    this.finished++;
    if (this.barriers.length > 0) this.passBarriers();
  };
  private readonly failed = (err: unknown): void => {
    // The first failure poisons this PG's storage: flush() reports it and raft stops here.
    this.failure ??= err;
    this.pending--;
    this.finished++;
    if (this.barriers.length > 0) this.passBarriers();
  };

  private passBarriers(): void {
    while (this.barriers.length > 0 && this.barrierTargets[0] <= this.finished) {
      this.barrierTargets.shift();
      this.barriers.shift()!.passed(this.failure);
    }
  }

  /** Makes `barrier` wait for every write issued so far (none running: only a failure matters). */
  joinBarrier(barrier: WriteBarrier): void {
    if (this.pending === 0) {
      barrier.failure ??= this.failure;
      return;
    }
    barrier.remaining++;
    this.barriers.push(barrier);
    this.barrierTargets.push(this.issued);
  }

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
    if (hi > this.lastIndex() + 1) assert(false, `entries up to ${hi} past last index ${this.lastIndex()}`);
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
    this.track(this.chain.then(work));
  }

  private track(write: Promise<void>): void {
    this.markLogDirty(this);
    this.pending++;
    this.issued++;
    this.chain = write.then(this.settled, this.failed);
  }

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0].index;
    const base = this.snap.meta.index + 1;
    if (first < base || first > this.lastIndex() + 1) assert(false, `append at ${first} outside [${base}, ${this.lastIndex() + 1}]`);
    // A plain append (nothing replaced) leaves the length alone: setting it costs a runtime call.
    if (first - base < this.ents.length) {
      for (let i = first - base; i < this.ents.length; i++) this.bytes -= this.ents[i].data.byteLength;
      this.ents.length = first - base;
    }
    for (const e of entries) {
      this.ents.push(e);
      this.bytes += e.data.byteLength;
    }
    if (this.pending === 0 && first > this.log.lastIndex) {
      // The common case, a plain append with nothing queued before it: no chain link of its own.
      let write: Promise<void>;
      try {
        write = this.log.append(entries);
      } catch (err) {
        write = Promise.reject(err);
      }
      this.track(write);
      return;
    }
    this.issue(async () => {
      if (first <= this.log.lastIndex) await this.log.truncateSuffix(first);
      await this.log.append(entries);
    });
  }

  setHardState(hs: HardState): void {
    const voteChanged = hs.term !== this.hard.term || hs.vote !== this.hard.vote;
    this.hard = hs;
    // Term and vote must be durable before anyone hears of them: into the kv, flushed this round.
    // The commit index need not be: a restart takes at least the checkpointed applied index and
    // the snapshot index as committed, and learns the rest from the leader (see open()). So a
    // round that only moves the commit index leaves the kv alone; the next kv flush records it.
    if (voteChanged) {
      this.recordHardState();
      this.markDirty();
    } else {
      this.hardStale = true;
    }
  }

  /** Puts the hard state into the kv (made durable by the next kv flush). */
  recordHardState(): void {
    setJson(this.kv, keys.hard(this.pg), this.hard);
    this.hardStale = false;
  }

  get hardStateStale(): boolean {
    return this.hardStale;
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

  /** Resolves once every write issued so far finished; rejects if any failed. */
  settle(): Promise<void> {
    return this.pending === 0 ? this.outcome() : this.chain.then(() => this.outcome());
  }

  private outcome(): Promise<void> {
    return this.failure === undefined ? Promise.resolve() : Promise.reject(this.failure);
  }
}

export class DiskRaftStorage implements RaftStorageProvider {
  private readonly open_ = new Map<PgId, PgLogStorage>();
  private kvDirty = false;
  /** PGs with log writes issued since the flush that last took them on. */
  private readonly dirtyLogs = new Set<PgLogStorage>();
  /** Settles once every flush that took on log writes so far finished (RESOLVED: none running). */
  private logsFlushed: Promise<void> = RESOLVED;
  /** kv flushes one at a time (a round and a checkpoint may flush at once). */
  private kvFlushing: Promise<void> = Promise.resolve();
  /** A kv flush queued behind the running one: later requests join it. */
  private kvQueued: Promise<void> | undefined;
  /** The shard's meter: how long each flush with log writes took to make them durable (ms). */
  onLogFlush: ((ms: number) => void) | undefined;

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
    // The kv's commit index is only a hint: it is recorded when the kv is flushed for another
    // reason (see setHardState), so it may lag. Entries up to the snapshot and up to the
    // checkpointed applied index were committed (only committed entries are applied or
    // compacted); they are taken as committed again. It may also run past the log that reached
    // the disk (the kv is flushed on its own schedule): those entries are committed on a majority
    // elsewhere, and this replica re-learns them.
    const durableLast = snap.meta.index + ents.length;
    const checkpointed = getJson<number>(kv, keys.applied(pg)) ?? snap.meta.index;
    const commit = Math.min(Math.max(hard.commit, checkpointed, snap.meta.index), durableLast);
    if (commit !== hard.commit) hard = { ...hard, commit };
    const storage = new PgLogStorage(pg, log, kv, () => (this.kvDirty = true), (s) => this.dirtyLogs.add(s), () => this.flushKv(), hard, snap, ents);
    if (isNew) {
      // The first configuration must be durable before the group acts on it.
      storage.recordHardState();
      const record: SnapshotMetaRecord = { index: 0, term: 0, voters: [...membership.voters], learners: [...membership.learners] };
      setJson(kv, keys.snap(pg), record);
      this.kvDirty = true;
    }
    this.open_.set(pg, storage);
    const applied = Math.max(Math.min(checkpointed, hard.commit), snap.meta.index);
    return { storage, applied, restoring: this.restoring(pg) };
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
   * written: a round that only commits or applies; none either when the store's log writes are
   * durable as they complete), then the kv if it changed. The round's flush and the checkpoint's
   * may run at once: writes an earlier flush took on are durable only when it is, so a flush also
   * waits for the ones still running. Costs what the dirty PGs cost, not what the shard hosts.
   */
  flush(): Promise<void> {
    let logs = this.logsFlushed;
    if (this.dirtyLogs.size > 0) {
      const barrier = new WriteBarrier();
      for (const s of this.dirtyLogs) s.joinBarrier(barrier);
      if (barrier.remaining === 0) barrier.settle();
      const written = barrier.promise;
      this.dirtyLogs.clear();
      const onLogFlush = this.onLogFlush;
      const asked = onLogFlush === undefined ? 0 : performance.now();
      const done = written.then(this.flushStore);
      // A later flush also waits for this one (and so for every earlier one): its writes are
      // durable only when this flush is.
      const all = this.logsFlushed === RESOLVED ? done : Promise.all([this.logsFlushed, done]).then(nothing);
      const finished = (): void => {
        if (this.logsFlushed === all) this.logsFlushed = RESOLVED;
      };
      all.then(finished, finished);
      if (onLogFlush !== undefined) all.then(() => onLogFlush(performance.now() - asked), nothing);
      this.logsFlushed = logs = all;
    }
    if (this.kvDirty) return logs === RESOLVED ? this.flushKv() : logs.then(() => this.flushKv());
    return logs === RESOLVED ? this.kvFlushing : logs.then(() => this.kvFlushing);
  }

  /** A store whose log writes are durable when they settle (a shard journal) needs no device flush for them. */
  private readonly flushStore = (): Promise<void> => (this.store.durableLogWrites === true ? RESOLVED : this.store.flush());

  /**
   * Persists the kv as it is now: joins a queued kv flush (it has not started, so it takes this
   * state too). The commit indexes that rounds left out of the kv ride along.
   */
  private flushKv(): Promise<void> {
    for (const storage of this.open_.values()) if (storage.hardStateStale) storage.recordHardState();
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
