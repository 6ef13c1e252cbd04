/**
 * One replica of a placement group on this shard: the raft group's state machine. It applies
 * committed PG ops to the object store in log order, wakes the proposals and reads waiting on
 * them, and tracks who leads.
 *
 * Durability: the raft log is the source of truth. Applied ops go to the object store without a
 * flush of their own; the shard's periodic checkpoint flushes the store and then records the
 * applied index (`durableApplied`), and only the log up to that index may be trimmed. After a
 * crash the PG replays from there: every op is an absolute byte-range write, so replaying one
 * that had already reached the store leaves the same bytes.
 *
 * Acknowledgement: a committed write that only overwrites space its object holds (the store says
 * so as it is issued, `ObjectStore.overwrites`) is acknowledged once issued, not once landed. It
 * is durable already (committed: in the logs of a majority, replayed after any crash), nothing
 * but the device can fail it, and a read still waits for it: `appliedIndex` moves only when ops
 * land, and reads wait for the applied index. A device failure under such a write stops the shard
 * (`failStop`) rather than go on without bytes it acknowledged. Any other op (a write that
 * allocates or grows an object, a discard, write-zeroes) is acknowledged once landed, so a store
 * that runs out of space fails it for its client instead.
 */
import type { ObjectChunk, ObjectStore, ObjectWriteOptions, PgId } from '../../kernel/contracts/store.js';
import { ErrorCode, FastblockError, assert } from '../../kernel/errors.js';
import { DataOp } from '../../client/data-protocol.js';
import type { ServedPg } from './data-service.js';
import { PgOpFlag, decodePgOp, type PgOp } from './pg-op.js';
import { EntryType, type Entry } from '../../kernel/raft/index.js';

/** What a PG needs of its raft group (the shard binds it to the multi-raft manager). */
export interface PgRaftPort {
  /** Appends `data` as a normal entry at the leader; throws NOT_LEADER elsewhere. */
  propose(data: Uint8Array): { index: number; term: number };
  /** Resolves with an index such that reads after applying it are linearizable (ReadIndex or lease). */
  readIndex(): Promise<number>;
}

/**
 * A committed entry handed to the state machine (the raft entry itself). Normal entries with data
 * carry a PG op; anything else (membership, a new leader's empty entry) only advances the index.
 */
export type CommittedEntry = Pick<Entry, 'index' | 'term' | 'type' | 'data'>;

const isOp = (entry: CommittedEntry): boolean => entry.type === EntryType.Normal && entry.data.length > 0;
const KEEP_CACHED: ObjectWriteOptions = { keepCached: true };

/**
 * How a replica writes an op's bytes: the leader serves the reads, so it keeps what it writes in
 * the store's read cache, unless the client said it caches them itself (NOCACHE: a writeback
 * export, which reads them from its own cache). The store still updates blocks it has cached
 * (keepCached false is its 'update' mode), so it never serves stale bytes.
 */
const writeOptions = (isLeader: boolean, op: PgOp): ObjectWriteOptions | undefined =>
  isLeader && ((op.flags ?? 0) & PgOpFlag.NOCACHE) === 0 ? KEEP_CACHED : undefined;
const NO_ENTRIES: readonly CommittedEntry[] = [];

/** Whoever waits for a batch of committed entries to be applied (apply()'s promise, or the shard's error log). */
interface ApplyWaiter {
  resolve: (() => void) | undefined;
  reject: (err: unknown) => void;
}

/** Work queued behind the batch being applied: a batch of committed entries, or a restore. */
type ApplyTask =
  | { readonly entries: readonly CommittedEntry[]; readonly waiter: ApplyWaiter }
  | { readonly entries: undefined; readonly run: () => Promise<void> };

interface Proposal {
  readonly term: number;
  readonly since: number;
  resolve(): void;
  reject(err: unknown): void;
}

/** How long a proposal may wait for its commit before the client is told TIMEOUT (outcome unknown). */
const PROPOSAL_TIMEOUT_MS = 10_000;

export class Pg implements ServedPg {
  leader: number | undefined;
  term = 0;
  appliedIndex: number;
  private readonly proposals = new Map<number, Proposal>();
  private applyWaiters: Array<{ index: number; resolve: () => void; reject: (err: unknown) => void }> = [];
  /** Work waiting for the batch being applied (or the restore running) to finish. */
  private readonly queue: ApplyTask[] = [];
  /** A batch is being applied or a restore runs. */
  private busy = false;
  /** A snapshot is being pulled: the replica's objects are not yet whole. */
  restoring = false;
  private closed = false;

  constructor(
    readonly id: PgId,
    readonly pool: number,
    readonly index: number,
    private readonly self: number,
    private readonly objects: ObjectStore,
    private readonly raft: PgRaftPort,
    appliedIndex: number,
    /** An op acknowledged before it landed failed to land: the shard must stop. */
    private readonly failStop: (err: unknown) => void,
  ) {
    this.appliedIndex = appliedIndex;
  }

  get isLeader(): boolean {
    return this.leader === this.self;
  }

  propose(op: Uint8Array): Promise<void> {
    const { index, term } = this.raft.propose(op);
    // No timer per proposal: the shard sweeps expired ones (expireProposals) once a second.
    return new Promise<void>((resolve, reject) => {
      this.proposals.set(index, { term, since: Date.now(), resolve, reject });
    });
  }

  /**
   * Fails proposals waiting longer than PROPOSAL_TIMEOUT_MS with TIMEOUT (their outcome is
   * unknown: the client retries the same op). Proposals are kept in the order they were made, so
   * the sweep stops at the first young one.
   */
  expireProposals(now = Date.now()): void {
    for (const [index, proposal] of this.proposals) {
      if (now - proposal.since < PROPOSAL_TIMEOUT_MS) return;
      this.proposals.delete(index);
      proposal.reject(new FastblockError(ErrorCode.TIMEOUT, `PG ${this.id}: entry ${index} not committed in ${PROPOSAL_TIMEOUT_MS} ms`, { pg: this.id, index }));
    }
  }

  /** The oldest proposal still waiting for its commit and apply: index and age (for the stall watchdog). */
  oldestProposal(now = Date.now()): { index: number; ageMs: number } | undefined {
    let oldest: { index: number; ageMs: number } | undefined;
    for (const [index, proposal] of this.proposals) {
      if (!oldest || now - proposal.since > oldest.ageMs) oldest = { index, ageMs: now - proposal.since };
    }
    return oldest;
  }

  /** Proposals waiting for their commit and apply. */
  get waitingProposals(): number {
    return this.proposals.size;
  }

  async readBarrier(): Promise<void> {
    const index = await this.raft.readIndex();
    if (this.appliedIndex >= index) return;
    await new Promise<void>((resolve, reject) => {
      this.applyWaiters.push({ index, resolve, reject });
      this.applyWaiters.sort((a, b) => a.index - b.index);
    });
  }

  /** Leadership changed. Proposals still waiting may yet commit under the new leader, or not: their outcome is unknown to us, so they fail as NOT_LEADER and the client retries the same op. */
  setLeader(leader: number | undefined, term: number): void {
    const wasLeader = this.isLeader;
    this.leader = leader;
    this.term = term;
    if (wasLeader && !this.isLeader) this.failProposals(new FastblockError(ErrorCode.NOT_LEADER, `PG ${this.id}: leadership lost`, { pg: this.id, leader }));
  }

  /** Applies committed entries, in order, after any still being applied; resolves once they are. */
  apply(entries: readonly CommittedEntry[]): Promise<void> {
    return new Promise<void>((resolve, reject) => this.enqueue(entries, { resolve, reject }));
  }

  /**
   * apply() without a promise, for the shard (one per batch and PG on every replica): `onError`
   * (the same function at every call) hears of an apply that failed (a gap in the entries; it
   * stops every later apply).
   */
  applyCommitted(entries: readonly CommittedEntry[], onError: (err: unknown, pg: PgId) => void): void {
    this.enqueue(entries, (this.committedWaiter ??= { resolve: undefined, reject: (err) => onError(err, this.id) }));
  }

  private committedWaiter: ApplyWaiter | undefined;

  private enqueue(entries: readonly CommittedEntry[], waiter: ApplyWaiter): void {
    if (this.busy || this.queue.length > 0) {
      this.queue.push({ entries, waiter });
      return;
    }
    this.startBatch(entries, waiter);
    this.next();
  }

  /** Starts queued work, in order, until some is in progress. */
  private next(): void {
    while (!this.busy && this.queue.length > 0) {
      const task = this.queue.shift()!;
      if (task.entries !== undefined) {
        this.startBatch(task.entries, task.waiter);
        continue;
      }
      this.busy = true;
      void task.run().then(this.taskDone);
    }
  }

  private readonly taskDone = (): void => {
    this.busy = false;
    this.next();
  };

  // The batch being applied (one at a time): its ops are issued together, then accounted for in
  // log order once all have landed. Kept in fields, so a batch costs no promise of its own: each
  // op's landing calls back (landed/failed) and the last one finishes the batch.
  private batch: readonly CommittedEntry[] = NO_ENTRIES;
  private batchFrom = 0;
  private batchWaiter: ApplyWaiter | undefined;
  /** Landings still awaited. */
  private landingsLeft = 0;
  /**
   * Per op of the batch (in order): acknowledged as issued (batchEarly[0..ops), reused, never
   * shrunk); and what failed it (allocated on a failure).
   */
  private readonly batchEarly: boolean[] = [];
  private batchFailures: unknown[] | undefined;
  /** An apply that failed (a gap): every later one fails with it, as the first did. */
  private broken: unknown;

  private readonly landed = (): void => {
    if (--this.landingsLeft === 0) {
      this.finishBatch();
      this.next();
    }
  };

  /** Records the first failure of op `op` (a WRITE_EXTENTS op has several writes). */
  private opFailed(op: number, err: unknown): void {
    const failures = (this.batchFailures ??= []);
    if (failures[op] === undefined) failures[op] = err ?? new FastblockError(ErrorCode.INTERNAL, `PG ${this.id}: apply failed`, { pg: this.id });
  }

  private startBatch(entries: readonly CommittedEntry[], waiter: ApplyWaiter): void {
    if (this.broken !== undefined) {
      waiter.reject(this.broken);
      return;
    }
    // Every op of the batch is issued at once (the store lands overlapping ones in issue order):
    // one ring submission and one wake-up for the batch rather than one per entry. They are then
    // accounted for in log order.
    let from = 0;
    while (from < entries.length && entries[from].index <= this.appliedIndex) from++;
    if (from === entries.length) {
      waiter.resolve?.();
      return;
    }
    try {
      if (entries[from].index !== this.appliedIndex + 1) assert(false, `PG ${this.id}: apply gap ${this.appliedIndex} -> ${entries[from].index}`);
      for (let i = from + 1; i < entries.length; i++) {
        if (entries[i].index !== entries[i - 1].index + 1) assert(false, `PG ${this.id}: apply gap ${entries[i - 1].index} -> ${entries[i].index}`);
      }
    } catch (err) {
      this.broken = err;
      waiter.reject(err);
      return;
    }
    this.busy = true;
    this.batch = entries;
    this.batchFrom = from;
    this.batchWaiter = waiter;
    this.batchFailures = undefined;
    // Held above zero while issuing: a landing cannot finish the batch before every op is out.
    this.landingsLeft = 1;
    let early = 0;
    for (let i = from, op = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (!isOp(entry)) continue;
      const isEarly = this.issueOp(entry.data, op);
      this.batchEarly[op++] = isEarly;
      if (isEarly) {
        early++;
        this.settle(entry, undefined);
      }
    }
    this.earlyAcknowledged += early;
    // The caller (enqueue, next) goes on with the queue: not from here, which would nest.
    if (--this.landingsLeft === 0) this.finishBatch();
  }

  /** Every op of the batch landed or failed: the entries count as applied, in log order. */
  private finishBatch(): void {
    const entries = this.batch;
    const waiter = this.batchWaiter!;
    const failures = this.batchFailures;
    this.batch = NO_ENTRIES;
    this.batchWaiter = undefined;
    this.busy = false;
    let op = 0;
    for (let i = this.batchFrom; i < entries.length; i++) {
      const entry = entries[i];
      let failure: unknown;
      if (isOp(entry)) {
        // A store failure (NO_SPACE) fails its op for its client; replicas agree because the same
        // op meets the same condition. The index still advances: the log moves on.
        failure = failures?.[op];
        if (failure !== undefined && this.batchEarly[op]) {
          // Its client was told it is written: no replica may go on without it.
          this.failStop(failure);
          waiter.resolve?.();
          return;
        }
        op++;
      }
      this.appliedIndex = entry.index;
      this.settle(entry, failure);
    }
    while (this.applyWaiters.length && this.applyWaiters[0].index <= this.appliedIndex) this.applyWaiters.shift()!.resolve();
    waiter.resolve?.();
  }

  /** Ops acknowledged as issued, before they landed (an overwrite of held space). */
  earlyAcknowledged = 0;

  /** The proposal of `entry`, if this replica made it, learns its outcome (once). */
  private settle(entry: CommittedEntry, failure: unknown): void {
    const proposal = this.proposals.get(entry.index);
    if (!proposal) return;
    this.proposals.delete(entry.index);
    if (proposal.term !== entry.term) proposal.reject(new FastblockError(ErrorCode.NOT_LEADER, `PG ${this.id}: entry ${entry.index} was replaced`, { pg: this.id }));
    else if (failure !== undefined) proposal.reject(failure);
    else proposal.resolve();
  }

  /** Waits for a write of op number `op` of the batch. */
  private await(landing: Promise<void>, op: number): void {
    this.landingsLeft++;
    landing.then(this.landed, (err: unknown) => {
      this.opFailed(op, err);
      this.landed();
    });
  }

  /** Starts applying op number `op` of the batch; returns whether it is acknowledged as issued. */
  private issueOp(bytes: Uint8Array, opNumber: number): boolean {
    try {
      const op = decodePgOp(bytes);
      switch (op.op) {
        case DataOp.WRITE: {
          // Asked right before the write is issued: nothing can change the answer in between.
          const early = this.objects.overwrites(this.id, op.object, op.offset, op.length);
          this.await(this.objects.write(this.id, op.object, op.offset, [op.data!], writeOptions(this.isLeader, op)), opNumber);
          return early;
        }
        case DataOp.WRITE_EXTENTS: {
          // The writes of its extents, in order, as WRITE would make them. Acknowledged early only
          // when every extent overwrites held space, asked before any is issued (they do not
          // overlap, and an overwrite allocates nothing, so none changes another's answer).
          // Applied only once every extent's write settled, even when one failed (with the first
          // failure).
          const extents = op.extents!;
          let early = true;
          for (let i = 0; i < extents.length && early; i += 2) early = this.objects.overwrites(this.id, op.object, extents[i], extents[i + 1]);
          const options = writeOptions(this.isLeader, op);
          for (let i = 0, at = 0; i < extents.length; at += extents[i + 1], i += 2) {
            this.await(this.objects.write(this.id, op.object, extents[i], [op.data!.subarray(at, at + extents[i + 1])], options), opNumber);
          }
          return early;
        }
        case DataOp.DISCARD:
          this.await(this.objects.discard(this.id, op.object, op.offset, op.length), opNumber);
          return false;
        case DataOp.WRITE_ZEROES:
          this.await(this.objects.writeZeroes(this.id, op.object, op.offset, op.length), opNumber);
          return false;
      }
    } catch (err) {
      this.opFailed(opNumber, err);
    }
    return false;
  }

  /**
   * Rebuilds the objects from another replica (recovery by snapshot, see recovery.ts); entries
   * after the snapshot apply behind it. A failed pull (its source died) is retried, from whatever
   * source `pull` picks then, until it succeeds or the PG is closed: the replica must not move on
   * with half its objects.
   */
  restore(index: number, pull: () => AsyncIterable<ObjectChunk>, onError: (err: unknown) => void): Promise<boolean> {
    this.restoring = true;
    return new Promise<boolean>((resolve, reject) => {
      const run = async (): Promise<void> => {
        if (this.broken !== undefined) {
          reject(this.broken);
          return;
        }
        let restored = false;
        for (let delay = 100; !this.closed; delay = Math.min(delay * 2, 2000)) {
          try {
            await this.objects.importPg(this.id, pull());
            this.appliedIndex = Math.max(this.appliedIndex, index);
            restored = true;
            break;
          } catch (err) {
            onError(err);
            await new Promise((r) => setTimeout(r, delay));
          }
        }
        this.restoring = false;
        resolve(restored);
      };
      this.queue.push({ entries: undefined, run });
      this.next();
    });
  }

  failProposals(err: unknown): void {
    for (const proposal of this.proposals.values()) proposal.reject(err);
    this.proposals.clear();
  }

  /** The replica is being closed or removed. */
  close(reason: string): void {
    this.closed = true;
    const err = new FastblockError(ErrorCode.NOT_LEADER, `PG ${this.id}: ${reason}`, { pg: this.id });
    this.failProposals(err);
    for (const waiter of this.applyWaiters) waiter.reject(err);
    this.applyWaiters = [];
  }
}
