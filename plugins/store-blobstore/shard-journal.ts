/**
 * The shard's journal: the raft logs of all its PGs in ONE blob (xattr kind 'journal'), so that a
 * raft round that appends to many PGs costs one device write instead of one per PG.
 *
 * Blob page 0 is the header (magic, head, capacity, epoch, base, nonce); the rest is a ring of records
 * back to back at increasing logical positions (physical = PAGE + (pos - base) mod capacity):
 *
 *   0 u32 CRC32C of bytes 4.., seeded with the nonce  16 u64 logical position
 *   4 u32 data length                                 24 u64 index (APPEND), from (TRUNCATE), to (TRIM)
 *   8 u32 CRC of the previous record                  32 u64 term
 *  12 u8 kind, u8 type, u8 pg length, u8 0            40 u64 the PG's first index after the record
 *  48 pg id (utf-8), then data
 *
 * Kinds: APPEND (one per raft entry), TRUNCATE (drop a suffix), TRIM (drop a prefix), RESET (the
 * PG's log was removed). Every record carries the PG's first index after it, so a record that
 * leaves a PG empty says all there is to know about it. APPENDs of a relocation carry flags
 * (RELOCATED, and RUN_END on the last): their run is applied only once complete.
 *
 * Batching: operations issued in the same JS turn go out as one write (the partial tail page,
 * kept in memory, rewritten with the new pages), one write in flight at a time; operations that
 * arrive meanwhile make the next batch. Batch writes are durable writes (RWF_DSYNC): a batch's
 * operations settle when they are on the medium, so the logs need no flush of the shard (what
 * the header says of the head still waits for one, see prepareFlush).
 *
 * Replay (open): from the header's head, a record counts only if its CRC, position and previous
 * CRC agree (a torn write, or a stale record of an earlier lap, ends the journal). Per PG: an
 * APPEND at an index within the PG's run truncates from there first; one below its first or past
 * its end starts the run afresh; TRUNCATE drops a suffix; TRIM drops a prefix; RESET drops the PG;
 * every record then raises the PG's first to the one it carries.
 *
 * Space: a PG's live records start at its anchor (its first record's latest write, or the record
 * that left it empty); the head is the lowest anchor (or the tail). Ring space before a head is
 * reused only once a header naming that head is durable, and a header names a head only once the
 * records it relies on are durable (see prepareFlush). Past half full, the PGs that pin the head
 * (idle ones keeping their tail, stuck followers) are relocated: their whole run is appended
 * again at the tail, from memory, so the head can pass their old records. When the live records
 * themselves fill two thirds of the ring, the journal grows instead: to a new, larger blob (see grow), up
 * to a size limit. Past it, appends wait (backpressure) for trims.
 */
import { randomBytes } from 'node:crypto';
import { FastblockError, ErrorCode, assert } from '../../kernel/errors.js';
import type { LogRecord } from '../../kernel/contracts/store.js';
import type { Logger } from '../../kernel/logger.js';
import { bufferPool } from './bdev/aligned-memory.js';
import type { Blob } from './blobstore/blob.js';
import { PAGE_SIZE, pageIntact, readU64, sealPage, viewOf, writeU64 } from './blobstore/layout.js';
import { crc32c } from './crc32c.js';
import { type Held, JournalLog } from './journal-log.js';

const P = PAGE_SIZE;
const RECORD_HEADER = 48;
const MAGIC = 'FBJRNL01';
const SCAN_WINDOW = 1 << 20;

const APPEND = 1;
const TRUNCATE = 2;
const TRIM = 3;
const RESET = 4;
type Kind = typeof APPEND | typeof TRUNCATE | typeof TRIM | typeof RESET;
/**
 * Flags of APPEND records written by a relocation: the run counts only once its last record (RUN_END)
 * is read, so a relocation torn part-way never cuts the run it copies short.
 */
const RELOCATED = 0x40;
const RUN_END = 0x80;

const floorPage = (x: number): number => Math.floor(x / P) * P;
const ceilPage = (x: number): number => Math.ceil(x / P) * P;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How batches gather: operations of the same turn (microtask) or also those of the turn's I/O callbacks (immediate). */
export type JournalBatching = 'microtask' | 'immediate';

export interface JournalHost {
  /** The shard's flush (which calls prepareFlush): makes a header written for a waiting append durable. */
  flush(): Promise<void>;
  readonly clusterSize: number;
  /** A new, empty journal blob (kind 'journal'), for a grow. */
  createBlob(): Blob;
  deleteBlob(blob: Blob): void;
  /** Bytes the journal may grow to. */
  readonly maxBytes: number;
  readonly logger?: Logger;
}

/** One operation of a batch. */
interface Op {
  readonly kind: Kind;
  readonly view: JournalLog;
  /** APPEND: the records (for a relocation: copies of the run the view held, to write again). */
  readonly records: readonly LogRecord[] | undefined;
  /** The op is a relocation (its records are the view's run as it was). */
  readonly relocated: boolean;
  /** APPEND: first index; TRUNCATE: from; TRIM: to. */
  readonly index: number;
  /** The PG's first index once the operation is applied. */
  readonly first: number;
  /** TRIM: it leaves the log empty. */
  readonly emptying: boolean;
  readonly bytes: number;
  /** Positions of the op's records, set when the batch is encoded. */
  positions: number[];
}

interface Batch {
  ops: Op[];
  bytes: number;
  readonly promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A batch whose callers all went away must not be reported as an unhandled rejection.
  promise.catch(() => undefined);
  return { ops: [], bytes: 0, promise, resolve, reject };
}

/** Bytes a record takes in the ring. */
const recordSize = (pg: Uint8Array, data: number): number => RECORD_HEADER + pg.length + data;

export interface JournalStats {
  /** Ring writes of batches (one per batch, two when it wraps). */
  readonly writes: number;
  readonly batches: number;
  readonly records: number;
  readonly relocations: number;
  /** Times an append waited for room. */
  readonly waits: number;
  readonly headerWrites: number;
  readonly capacityBytes: number;
  readonly usedBytes: number;
  readonly grows: number;
}

export class ShardJournal {
  private readonly views = new Map<string, JournalLog>();
  /** Removed views whose RESET is not written yet: they still pin the head. */
  private readonly retiring = new Set<JournalLog>();
  /** Position after the last written record. */
  private tail: number;
  private prevCrc = 0;
  private readonly tailPage = Buffer.alloc(P);
  /** Head in the last header written, and in the last header known durable. */
  private writtenHead: number;
  private durableHead: number;
  private headerWriting = false;
  /** The lowest anchor, valid unless anchorsMoved (set by whatever may move an anchor). */
  private lowest = Infinity;
  private anchorsMoved = true;
  /** Tail position before which makeRoom does not look for PGs to relocate again. */
  private nextRelocationCheck = 0;
  /** A larger ring being prepared for a grow. */
  private nextRing: NextRing | undefined;
  /** A grow is writing the new ring: flushes leave the header alone. */
  private growing = false;
  /** A grow that failed part-way: the journal refuses everything. */
  private failure: unknown;
  /** A head whose anchors were durable at the last flush: the next header may name it. */
  private justifiedHead: number;
  /** An append waits for room: the next flush writes the header whatever the head moved. */
  private headerWanted = false;
  /** The batch operations join now; `sealed`: batches waiting for the writer. */
  private open: Batch | undefined;
  private readonly sealed: Batch[] = [];
  private writing = false;
  private scheduled = false;
  private roomWaiters: (() => void)[] = [];
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private idleResolve: (() => void) | undefined;
  private counters = { writes: 0, batches: 0, records: 0, relocations: 0, waits: 0, headerWrites: 0, grows: 0 };

  private constructor(
    public blob: Blob,
    private readonly host: JournalHost,
    public capacity: number,
    /** Logical position at physical ring offset 0 (a grown journal starts past the old one's tail). */
    private base: number,
    /** Bumped by every grow: of two journal blobs, the higher epoch with a valid header is the journal. */
    private epoch: number,
    /** Seed of every record CRC of this ring (random per ring): bytes of any other ring never pass. */
    private nonce: number,
    head: number,
    private readonly batching: JournalBatching,
  ) {
    this.tail = this.writtenHead = this.durableHead = this.justifiedHead = head;
  }

  /** A new journal in `blob` (created with its xattrs, size 0): at least `capacityBytes` of ring, all reserved now. */
  static async create(blob: Blob, host: JournalHost, capacityBytes: number, batching: JournalBatching = 'microtask'): Promise<ShardJournal> {
    const capacity = ShardJournal.reserve(blob, host.clusterSize, capacityBytes);
    await ShardJournal.prefill(blob);
    const journal = new ShardJournal(blob, host, capacity, 0, 1, randomNonce(), 0, batching);
    await journal.writeHeader(0);
    // Batches are durable writes: they count only once the blob's md, the ring and the header
    // that lets replay find them are durable too (the crash test lost settled appends without it).
    await host.flush();
    return journal;
  }

  /**
   * Writes the whole ring once (Blob.materialize: on a file, a fresh ring's blocks are holes, and
   * each first append to one would allocate it and make the next fdatasync commit the file
   * system's journal; measured 10-20% more CPU per replicated write for the first lap).
   */
  private static prefill(blob: Blob): Promise<void> {
    return blob.materialize(0, blob.clusterCount);
  }

  /** Sizes `blob` for a ring of at least `capacityBytes` and reserves its clusters; returns the ring's bytes. */
  private static reserve(blob: Blob, clusterSize: number, capacityBytes: number): number {
    const clusters = Math.ceil((P + capacityBytes) / clusterSize);
    blob.resize(clusters);
    // Not zeroed through the blobstore (prefill writes the ring anyway); replay accepts only
    // records whose CRC is seeded with this ring's random nonce, at the position they claim, so
    // no old bytes (an earlier journal's, an object's) would pass in any case.
    blob.reserve(false);
    return clusters * clusterSize - P;
  }

  /** The header of a journal blob, or undefined when it has none intact. */
  static async readHeader(blob: Blob): Promise<JournalHeader | undefined> {
    if (blob.sizeBytes < 2 * P) return undefined;
    const page = bufferPool.acquire(P);
    try {
      await blob.read(0, page);
      if (decoder.decode(page.subarray(0, 8)) !== MAGIC || !pageIntact(page)) return undefined;
      const view = viewOf(page);
      const header = { head: readU64(view, 8), capacity: readU64(view, 16), epoch: readU64(view, 24), base: readU64(view, 32), nonce: view.getUint32(40, true) };
      if (header.capacity % P !== 0 || header.capacity <= 0 || header.capacity > blob.sizeBytes - P || header.base % P !== 0 || header.head < header.base) return undefined;
      return header;
    } finally {
      bufferPool.release(page);
    }
  }

  /**
   * Recovers the journal from its blob(s): of several (a grow cut short), the one whose intact
   * header has the highest epoch; the others are deleted. Then every PG's log from the records
   * that chain from the head.
   */
  static async open(blobs: readonly Blob[], host: JournalHost, batching: JournalBatching = 'microtask'): Promise<ShardJournal> {
    let best: { blob: Blob; header: JournalHeader } | undefined;
    for (const blob of blobs) {
      const header = await ShardJournal.readHeader(blob);
      if (header !== undefined && (best === undefined || header.epoch > best.header.epoch)) best = { blob, header };
    }
    if (best === undefined) throw new FastblockError(ErrorCode.CORRUPT, 'the shard journal has a damaged header', { blobIds: blobs.map((b) => b.id) });
    for (const blob of blobs) if (blob !== best.blob) host.deleteBlob(blob);
    const h = best.header;
    const journal = new ShardJournal(best.blob, host, h.capacity, h.base, h.epoch, h.nonce, h.head, batching);
    await journal.replay();
    return journal;
  }

  /** Device bytes the journal holds (its blob, and a ring being prepared for a grow). */
  get reservedBytes(): number {
    return this.blob.sizeBytes + (this.nextRing?.blob.sizeBytes ?? 0);
  }

  get stats(): JournalStats {
    return { ...this.counters, capacityBytes: this.capacity, usedBytes: this.tail - this.durableHead };
  }

  /**
   * The live records' bytes and what the logs should stay within: a third of the ring, half of the
   * two thirds past which the journal grows, so that compaction driven by this keeps the ring its
   * size and leaves room for what arrives between checkpoints.
   */
  get space(): { liveBytes: number; budgetBytes: number } {
    return { liveBytes: this.liveBytes(), budgetBytes: Math.floor(this.capacity / 3) };
  }

  /** The PG's log (an empty one, starting at 1, when the journal holds none). */
  log(pg: string): JournalLog {
    this.checkOpen();
    let view = this.views.get(pg);
    if (view === undefined) {
      const bytes = encoder.encode(pg);
      if (bytes.length > 255) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'PG id longer than 255 bytes', { pg });
      view = new JournalLog(this, pg, bytes);
      this.views.set(pg, view);
    }
    return view;
  }

  /** Drops the PG's log: RESET recorded after its operations; the old view refuses further ones. */
  async remove(pg: string): Promise<void> {
    this.checkOpen();
    const view = this.views.get(pg);
    if (view === undefined) return;
    this.views.delete(pg);
    this.anchorsMoved = true;
    view.closed = true;
    if (view.anchor === Infinity && view.pending === 0) return;
    // Until the RESET is written, the old records replay: they keep pinning the head.
    this.retiring.add(view);
    await this.enqueue({ kind: RESET, view, records: undefined, relocated: false, index: 0, first: 1, emptying: true, bytes: recordSize(view.pgBytes, 0), positions: [] });
    await view.close();
  }

  // ---- operations of the views ---------------------------------------------------------------

  append(view: JournalLog, dataBytes: number, records: readonly LogRecord[]): Promise<void> {
    const bytes = records.length * (RECORD_HEADER + view.pgBytes.length) + dataBytes;
    const first = view.size === 0 ? records[0].index : view.first;
    return this.enqueue({ kind: APPEND, view, records, relocated: false, index: records[0].index, first, emptying: false, bytes, positions: [] });
  }

  truncate(view: JournalLog, from: number): Promise<void> {
    return this.enqueue({ kind: TRUNCATE, view, records: undefined, relocated: false, index: from, first: view.first, emptying: from <= view.first, bytes: recordSize(view.pgBytes, 0), positions: [] });
  }

  trim(view: JournalLog, to: number, emptying: boolean): Promise<void> {
    const done = this.enqueue({ kind: TRIM, view, records: undefined, relocated: false, index: to, first: to, emptying, bytes: recordSize(view.pgBytes, 0), positions: [] });
    // A trim that kept records moved the view's anchor already.
    if (!emptying) {
      this.anchorsMoved = true;
      this.roomChanged();
    }
    return done;
  }

  private enqueue(op: Op): Promise<void> {
    this.checkOpen();
    if (op.bytes > this.capacity / 4) {
      throw new FastblockError(ErrorCode.NO_SPACE, `the shard journal (${this.capacity} bytes) is too small for an operation of ${op.bytes} bytes`, {
        pg: op.view.pg,
        bytes: op.bytes,
        capacity: this.capacity,
      });
    }
    let batch = this.open;
    if (batch !== undefined && batch.bytes + op.bytes > this.capacity / 4) {
      // Batches stay well below the ring, so one always fits once the ring drains.
      this.sealed.push(batch);
      batch = undefined;
    }
    if (batch === undefined) {
      batch = this.open = newBatch();
      if (!this.scheduled && !this.writing) {
        this.scheduled = true;
        if (this.batching === 'microtask') queueMicrotask(this.kick);
        else setImmediate(this.kick);
      }
    }
    batch.ops.push(op);
    batch.bytes += op.bytes;
    return batch.promise;
  }

  private readonly kick = (): void => {
    this.scheduled = false;
    if (this.writing) return;
    void this.pump();
  };

  /** Writes batches one at a time until none is left. */
  private async pump(): Promise<void> {
    this.writing = true;
    for (;;) {
      let batch = this.sealed.shift();
      if (batch === undefined) {
        batch = this.open;
        this.open = undefined;
      }
      if (batch === undefined) break;
      try {
        await this.makeRoom(batch);
        await this.writeBatch(batch);
        batch.resolve();
      } catch (err) {
        batch.reject(err);
      }
    }
    this.writing = false;
    this.idleResolve?.();
    this.idleResolve = undefined;
  }

  // ---- space ---------------------------------------------------------------------------------

  private hasRoom(bytes: number): boolean {
    return ceilPage(this.tail + bytes) - floorPage(this.durableHead) <= this.capacity;
  }

  /** The lowest position a replay must start from: the lowest anchor, or the tail. */
  private computeHead(): number {
    return Math.min(this.lowestAnchor(), this.tail);
  }

  /** The lowest anchor of the views, recomputed only after something may have moved one. */
  private lowestAnchor(): number {
    if (this.anchorsMoved) {
      let lowest = Infinity;
      for (const view of this.views.values()) {
        const a = view.anchor;
        if (a < lowest) lowest = a;
      }
      for (const view of this.retiring) {
        const a = view.anchor;
        if (a < lowest) lowest = a;
      }
      this.lowest = lowest;
      this.anchorsMoved = false;
    }
    return this.lowest;
  }

  /** Bytes the views' live records take (what a relocation of everything, a grow, writes). */
  private liveBytes(): number {
    let live = 0;
    for (const view of this.views.values()) live += view.size * (RECORD_HEADER + view.pgBytes.length) + view.dataBytes + RECORD_HEADER + view.pgBytes.length;
    return live;
  }

  private async makeRoom(batch: Batch): Promise<void> {
    if (this.tail + batch.bytes - this.durableHead > this.capacity / 2 && this.tail >= this.nextRelocationCheck && this.lowestAnchor() < this.tail - this.capacity / 2) {
      // Past half full with old records live: up to two thirds of the ring live means PGs that do
      // not trim pin the head (relocate them); more means the ring is too small for the logs'
      // tails (grow it: the new ring is prepared meanwhile). Looked at again an eighth of a ring
      // later.
      this.nextRelocationCheck = this.tail + this.capacity / 8;
      const live = this.liveBytes() + batch.bytes;
      if (live <= (this.capacity * 2) / 3 || (this.nextRing === undefined && !this.prepareGrow(live))) this.relocate(batch);
    }
    if (this.nextRing !== undefined && (this.nextRing.ready || this.nextRing.failed)) await this.grow();
    let warned = false;
    while (!this.hasRoom(batch.bytes)) {
      this.checkOpen();
      if (this.computeHead() > this.durableHead) {
        // The room is there once a header naming the new head is durable (two flushes: the first
        // makes its anchors durable, the second the header).
        this.headerWanted = true;
        const before = this.durableHead;
        const justified = this.justifiedHead;
        await this.host.flush();
        if (this.durableHead > before || this.justifiedHead > justified) continue;
      }
      // A ring the live records fill (their trims may be queued behind this very batch): grow.
      if (this.nextRing !== undefined || this.prepareGrow(this.liveBytes() + batch.bytes)) {
        await this.nextRing!.prefilled;
        if (await this.grow()) continue;
      }
      // Nothing to free now: wait for trims (backpressure).
      this.counters.waits++;
      if (!warned) {
        warned = true;
        this.host.logger?.warn({ capacity: this.capacity, used: this.tail - this.durableHead, batch: batch.bytes }, 'shard journal full: appends wait for the logs to be trimmed');
      }
      await new Promise<void>((resolve) => {
        this.roomWaiters.push(resolve);
        // Trims also come from outside (checkpoints); look again now and then.
        setTimeout(resolve, 100).unref();
      });
    }
  }

  /**
   * Starts preparing a ring of at least three times `live` (twice the old one at least, within
   * host.maxBytes) in a new blob: reserved, then written once (prefill) in the background while
   * the journal goes on in the old ring. False when the journal is at its size limit or the
   * device has no room for the new ring.
   */
  private prepareGrow(live: number): boolean {
    const wanted = Math.min(this.host.maxBytes, Math.max(2 * this.capacity, 3 * live));
    if (wanted <= this.capacity || wanted < 2 * live) return false;
    let blob: Blob;
    let capacity: number;
    try {
      blob = this.host.createBlob();
    } catch (err) {
      this.host.logger?.warn({ err, capacity: this.capacity, wanted }, 'shard journal cannot grow');
      return false;
    }
    try {
      capacity = ShardJournal.reserve(blob, this.host.clusterSize, wanted);
    } catch (err) {
      this.host.deleteBlob(blob);
      this.host.logger?.warn({ err, capacity: this.capacity, wanted }, 'shard journal cannot grow');
      return false;
    }
    const next: NextRing = { blob, capacity, ready: false, failed: false, prefilled: Promise.resolve() };
    next.prefilled = ShardJournal.prefill(blob).then(
      () => {
        next.ready = true;
      },
      (err: unknown) => {
        // Nothing of the journal changed: it stays as it is (a later grow may try again).
        next.failed = true;
        this.host.logger?.warn({ err, capacity: this.capacity, wanted }, 'shard journal cannot grow');
      },
    );
    this.nextRing = next;
    return true;
  }

  /**
   * Moves the journal to the prepared ring: every view's run is written there from memory, made
   * durable, then the new blob's header (a higher epoch), made durable; only then is the old blob
   * deleted. A crash before the new header is durable leaves the old journal in force. False when
   * the prepared ring could not be written (it is dropped; nothing changed).
   */
  private async grow(): Promise<boolean> {
    const next = this.nextRing!;
    this.nextRing = undefined;
    if (!next.ready) {
      this.host.deleteBlob(next.blob);
      return false;
    }
    const { blob, capacity } = next;
    const started = Date.now();
    this.counters.grows++;
    const old = { blob: this.blob, capacity: this.capacity };
    // From here on the journal writes to the new ring, starting on a fresh page past the old tail.
    const start = ceilPage(this.tail);
    this.blob = blob;
    this.capacity = capacity;
    this.base = start;
    this.epoch++;
    this.nonce = randomNonce();
    this.tail = this.durableHead = this.writtenHead = this.justifiedHead = start;
    this.prevCrc = 0;
    this.tailPage.fill(0);
    this.growing = true;
    try {
      let group = newBatch();
      for (const view of this.views.values()) {
        const op = this.relocation(view);
        if (op === undefined) continue;
        if (group.bytes + op.bytes > 8 << 20 && group.ops.length !== 0) {
          await this.writeBatch(group);
          group = newBatch();
        }
        group.ops.push(op);
        group.bytes += op.bytes;
      }
      if (group.ops.length !== 0) await this.writeBatch(group);
      // The records, then the header naming them: each made durable before the next step.
      await this.host.flush();
      await this.writeHeader(start);
      await this.host.flush();
    } catch (err) {
      // The views may name positions in the new ring now: this journal cannot go on.
      this.failure = err;
      this.growing = false;
      throw err;
    }
    this.growing = false;
    // Removed logs' old records are gone with the old ring.
    this.retiring.clear();
    this.anchorsMoved = true;
    this.nextRelocationCheck = 0;
    this.host.deleteBlob(old.blob);
    this.host.logger?.info({ from: old.capacity, to: capacity, ms: Date.now() - started }, 'shard journal grown');
    this.roomChanged();
    return true;
  }

  private roomChanged(): void {
    if (this.roomWaiters.length === 0) return;
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Appends the runs of the PGs whose anchors pin the head again at the front of the batch (the
   * state the views hold now; the batch's own operations apply on top), oldest first, up to an
   * eighth of the ring per batch.
   */
  private relocate(batch: Batch): void {
    const old = this.tail - this.capacity / 2;
    const candidates = [...this.views.values()].filter((v) => v.anchor < old).sort((a, b) => a.anchor - b.anchor);
    if (candidates.length === 0) return;
    let budget = this.capacity / 8;
    const ops: Op[] = [];
    for (const view of candidates) {
      const op = this.relocation(view);
      if (op === undefined) continue;
      // A run larger than the budget is not moved (an active log: its own trims free it).
      if (op.bytes > budget && view.size !== 0) continue;
      ops.push(op);
      budget -= op.bytes;
      this.counters.relocations++;
      if (budget <= 0) break;
    }
    for (const op of ops) batch.bytes += op.bytes;
    batch.ops = [...ops, ...batch.ops];
  }

  /** The records that write the view's state again: its run, or the record naming its first index when empty. */
  private relocation(view: JournalLog): Op | undefined {
    if (view.size === 0) {
      if (view.markPos < 0) return undefined;
      return { kind: TRIM, view, records: undefined, relocated: true, index: view.first, first: view.first, emptying: true, bytes: recordSize(view.pgBytes, 0), positions: [] };
    }
    const records: LogRecord[] = new Array<LogRecord>(view.size);
    for (let i = 0; i < records.length; i++) records[i] = { index: view.first + i, term: view.terms[i], type: view.types[i], data: view.datas[i] };
    const bytes = view.size * (RECORD_HEADER + view.pgBytes.length) + view.dataBytes;
    return { kind: APPEND, view, records, relocated: true, index: view.first, first: view.first, emptying: false, bytes, positions: [] };
  }

  // ---- writing -------------------------------------------------------------------------------

  /** Encodes the batch at the tail (the partial tail page rewritten, then the new pages: one write) and applies it once written. */
  private async writeBatch(batch: Batch): Promise<void> {
    const start = this.tail;
    const pageStart = floorPage(start);
    const prefix = start - pageStart;
    const length = ceilPage(prefix + batch.bytes);
    const buffer = bufferPool.acquire(length);
    let pos = start;
    let prev = this.prevCrc;
    let records = 0;
    try {
      buffer.set(this.tailPage.subarray(0, prefix), 0);
      const view = viewOf(buffer);
      let at = prefix;
      for (const op of batch.ops) {
        const pg = op.view.pgBytes;
        if (op.kind === APPEND) {
          const list = op.records!;
          const n = list.length;
          op.positions = new Array<number>(n);
          for (let i = 0; i < n; i++) {
            const h = list[i];
            const kind = !op.relocated ? APPEND : i === n - 1 ? APPEND | RELOCATED | RUN_END : APPEND | RELOCATED;
            prev = encode(buffer, view, at, kind, h.type, pg, pos, op.index + i, h.term, op.first, h.data, prev, this.nonce);
            op.positions[i] = pos;
            const size = RECORD_HEADER + pg.length + h.data.length;
            at += size;
            pos += size;
            records++;
          }
        } else {
          prev = encode(buffer, view, at, op.kind, 0, pg, pos, op.index, 0, op.first, EMPTY, prev, this.nonce);
          op.positions = [pos];
          const size = RECORD_HEADER + pg.length;
          at += size;
          pos += size;
          records++;
        }
      }
      assert(pos - start === batch.bytes, 'journal batch size');
      buffer.fill(0, at, length);
      await this.writeRing(pageStart, buffer.subarray(0, length));
    } catch (err) {
      bufferPool.release(buffer);
      throw err;
    }
    this.tail = pos;
    this.prevCrc = prev;
    const lastPage = floorPage(pos) - pageStart;
    if (lastPage < length) this.tailPage.set(buffer.subarray(lastPage, lastPage + P));
    else this.tailPage.fill(0);
    bufferPool.release(buffer);
    this.counters.batches++;
    this.counters.records += records;
    let freed = false;
    for (const op of batch.ops) {
      const v = op.view;
      switch (op.kind) {
        case APPEND:
          if (op.relocated) {
            v.applyRelocation(op.index, op.positions);
            freed = true;
          } else {
            // An append moves the anchor only of a log that was empty (from its mark to the record).
            if (v.size === 0) this.anchorsMoved = true;
            v.applyAppend(op.records!, op.positions);
          }
          break;
        case TRUNCATE:
          v.applyTruncate(op.index, op.positions[0]);
          this.anchorsMoved = true;
          break;
        case TRIM:
          v.applyTrim(op.index, op.positions[0], op.emptying);
          freed = true;
          break;
        case RESET:
          this.retiring.delete(v);
          freed = true;
          break;
      }
    }
    if (freed) {
      this.anchorsMoved = true;
      this.roomChanged();
    }
  }

  private ringSegments(pos: number, length: number): { blobOffset: number; start: number; length: number }[] {
    assert(pos % P === 0 && length % P === 0 && length <= this.capacity, 'journal I/O is whole pages within the ring');
    const phys = (pos - this.base) % this.capacity;
    if (phys + length <= this.capacity) return [{ blobOffset: P + phys, start: 0, length }];
    const first = this.capacity - phys;
    return [
      { blobOffset: P + phys, start: 0, length: first },
      { blobOffset: P, start: first, length: length - first },
    ];
  }

  private writeRing(pos: number, buffer: Uint8Array): Promise<void> {
    const segments = this.ringSegments(pos, buffer.length);
    this.counters.writes += segments.length;
    // Durable writes: a raft round's appends are on the medium when their batch settles, and the
    // round needs no device flush of its own (the ring's clusters were reserved and flushed).
    if (segments.length === 1) return this.blob.write(segments[0].blobOffset, buffer, 'none', true);
    return Promise.all(segments.map((s) => this.blob.write(s.blobOffset, buffer.subarray(s.start, s.start + s.length), 'none', true))).then(() => undefined);
  }

  private async readRing(pos: number, buffer: Uint8Array): Promise<void> {
    await Promise.all(this.ringSegments(pos, buffer.length).map((s) => this.blob.read(s.blobOffset, buffer.subarray(s.start, s.start + s.length))));
  }

  // ---- header and flush ----------------------------------------------------------------------

  private async writeHeader(head: number): Promise<void> {
    const page = bufferPool.acquire(P);
    try {
      page.fill(0);
      page.set(encoder.encode(MAGIC), 0);
      const view = viewOf(page);
      writeU64(view, 8, head);
      writeU64(view, 16, this.capacity);
      writeU64(view, 24, this.epoch);
      writeU64(view, 32, this.base);
      view.setUint32(40, this.nonce, true);
      sealPage(page);
      await this.blob.write(0, page);
      this.counters.headerWrites++;
      if (head > this.writtenHead) this.writtenHead = head;
    } finally {
      bufferPool.release(page);
    }
  }

  /**
   * Called by the shard before its device flush; returns what to call once that flush succeeded,
   * or a promise of it when it first writes a header.
   *
   * A head is safe to name only once the records it relies on (the anchors: relocated runs, the
   * first records of trimmed logs) are durable, or a torn flush could keep the header and lose
   * them: the head computed at one flush becomes nameable when that flush succeeded, and a later
   * flush writes it, when it moved an eighth of the ring or an append waits for room. The space
   * before it is reusable once that flush succeeded too.
   */
  prepareFlush(): Promise<() => void> | (() => void) | undefined {
    if (this.growing) return undefined;
    const candidate = this.computeHead();
    const justify = candidate > this.justifiedHead ? candidate : undefined;
    const head = this.justifiedHead;
    const wanted = !this.headerWriting && head > this.writtenHead && (this.headerWanted || this.closed || head - this.writtenHead >= this.capacity / 8);
    if (!wanted) {
      if (justify === undefined) return undefined;
      return () => {
        if (justify > this.justifiedHead) this.justifiedHead = justify;
      };
    }
    this.headerWriting = true;
    const commit = (): void => {
      if (justify !== undefined && justify > this.justifiedHead) this.justifiedHead = justify;
      if (head > this.durableHead) this.durableHead = head;
      this.headerWanted = false;
      this.roomChanged();
    };
    return this.writeHeader(head).then(
      () => {
        this.headerWriting = false;
        return commit;
      },
      (err: unknown) => {
        this.headerWriting = false;
        throw err;
      },
    );
  }

  /** Waits for batches in progress; the journal refuses new operations afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const view of this.views.values()) view.closed = true;
    if (this.writing || this.open !== undefined || this.sealed.length !== 0) {
      this.idle = new Promise((resolve) => (this.idleResolve = resolve));
      if (!this.writing && !this.scheduled) void this.pump();
      await this.idle;
    }
    this.closed = true;
    this.roomChanged();
    // The next reopen replays from the current head.
    this.headerWanted = true;
    // A ring prepared for a grow that did not happen goes (open would delete it anyway).
    const next = this.nextRing;
    this.nextRing = undefined;
    if (next !== undefined) {
      await next.prefilled;
      this.host.deleteBlob(next.blob);
    }
  }

  private checkOpen(): void {
    if (this.failure !== undefined) throw new FastblockError(ErrorCode.IO_ERROR, 'the shard journal failed while growing', { blobId: this.blob.id }, { cause: this.failure });
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, 'the shard journal is closed', { blobId: this.blob.id });
  }

  // ---- replay --------------------------------------------------------------------------------

  /** Rebuilds every PG's log from the records that chain from the head (see the file comment). */
  private async replay(): Promise<void> {
    const head = this.tail;
    const states = new Map<string, ReplayState>();
    /** Relocated runs not complete yet (a torn relocation is dropped). */
    const runs = new Map<string, Scanned[]>();
    let pos = head;
    let prev = -1;
    let window = Buffer.alloc(0);
    let windowStart = 0;
    const limit = head + this.capacity;
    for (;;) {
      if (pos + RECORD_HEADER > limit) break;
      let at = pos - windowStart;
      const fits = (): boolean => at >= 0 && at + RECORD_HEADER <= window.length && at + RECORD_HEADER + window[at + 14] + viewOf(window).getUint32(at + 4, true) <= window.length;
      if (!fits()) {
        windowStart = floorPage(pos);
        const peek = Buffer.alloc(Math.min(2 * P, this.capacity));
        await this.readRing(windowStart, peek);
        const inPeek = pos - windowStart;
        let size = Math.min(SCAN_WINDOW, this.capacity);
        if (inPeek + 16 <= peek.length) size = Math.max(size, ceilPage(inPeek + RECORD_HEADER + peek[inPeek + 14] + viewOf(peek).getUint32(inPeek + 4, true)));
        if (size > this.capacity) break;
        window = Buffer.alloc(size);
        await this.readRing(windowStart, window);
        at = pos - windowStart;
        if (!fits()) break;
      }
      const view = viewOf(window);
      const dataLength = view.getUint32(at + 4, true);
      const pgLength = window[at + 14];
      const size = RECORD_HEADER + pgLength + dataLength;
      if (pos + size > limit || readU64(view, at + 16) !== pos) break;
      const crc = view.getUint32(at, true);
      if (crc32c(window.subarray(at + 4, at + size), this.nonce) !== crc) break;
      if (prev !== -1 && view.getUint32(at + 8, true) !== prev) break;
      const kindByte = window[at + 12];
      const kind = kindByte & 0x0f;
      if (kind < APPEND || kind > RESET || ((kindByte & RELOCATED) !== 0 && kind !== APPEND)) break;
      const pg = decoder.decode(window.subarray(at + RECORD_HEADER, at + RECORD_HEADER + pgLength));
      const record: Scanned = {
        kind,
        index: readU64(view, at + 24),
        term: readU64(view, at + 32),
        type: window[at + 13],
        first: readU64(view, at + 40),
        data: window.subarray(at + RECORD_HEADER + pgLength, at + size),
        pos,
      };
      if ((kindByte & RELOCATED) !== 0) {
        let run = runs.get(pg);
        // A run left unfinished by a torn write is followed by the PG's later records, never continued.
        if (run === undefined || run[run.length - 1].index + 1 !== record.index) runs.set(pg, (run = []));
        run.push(record);
        if ((kindByte & RUN_END) !== 0) {
          runs.delete(pg);
          for (const r of run) replayRecord(states, pg, r);
        }
      } else {
        runs.delete(pg);
        replayRecord(states, pg, record);
      }
      prev = crc;
      pos += size;
    }
    this.tail = pos;
    this.prevCrc = prev === -1 ? 0 : prev;
    const pageStart = floorPage(pos);
    if (pos > pageStart) await this.readRing(pageStart, this.tailPage);
    this.tailPage.fill(0, pos - pageStart);
    for (const [pg, s] of states) {
      const view = this.log(pg);
      // Copies of the data: the scan windows hold dead records too.
      view.restore(
        s.first,
        s.held.map((h) => h.term),
        s.held.map((h) => h.type),
        s.held.map((h) => h.data.slice()),
        s.held.map((h) => h.pos),
      );
      view.markPos = s.held.length === 0 ? s.markPos : -1;
    }
    this.host.logger?.info({ head, tail: pos, capacity: this.capacity, logs: states.size }, 'shard journal replayed');
  }
}

const EMPTY = new Uint8Array(0);

interface NextRing {
  readonly blob: Blob;
  readonly capacity: number;
  /** Written once (prefill done): the journal may move there. */
  ready: boolean;
  failed: boolean;
  prefilled: Promise<void>;
}

interface JournalHeader {
  readonly head: number;
  readonly capacity: number;
  readonly base: number;
  readonly epoch: number;
  readonly nonce: number;
}

function randomNonce(): number {
  return randomBytes(4).readUInt32LE(0);
}

interface Scanned {
  readonly kind: number;
  readonly index: number;
  readonly term: number;
  readonly type: number;
  readonly first: number;
  readonly data: Uint8Array;
  readonly pos: number;
}

interface ReplayState {
  first: number;
  held: Held[];
  markPos: number;
}

/** Applies one record to the PG's replayed log (the rules of the file comment). */
function replayRecord(states: Map<string, ReplayState>, pg: string, r: Scanned): void {
  if (r.kind === RESET) {
    states.delete(pg);
    return;
  }
  let s = states.get(pg);
  if (s === undefined) {
    s = { first: r.kind === APPEND ? r.index : r.first, held: [], markPos: -1 };
    states.set(pg, s);
  }
  const last = s.first + s.held.length - 1;
  if (r.kind === APPEND) {
    if (r.index < s.first || r.index > last + 1) {
      s.first = r.index;
      s.held = [];
    } else {
      s.held.length = r.index - s.first;
    }
    s.held.push({ term: r.term, type: r.type, data: r.data, pos: r.pos });
  } else if (r.kind === TRUNCATE) {
    const keep = Math.max(0, r.index - s.first);
    if (keep < s.held.length) s.held.length = keep;
  } else {
    const drop = Math.min(Math.max(0, r.index - s.first), s.held.length);
    if (drop > 0) s.held = s.held.slice(drop);
    if (r.index > s.first) s.first = r.index;
  }
  if (s.held.length === 0) {
    s.first = r.first;
    s.markPos = r.pos;
  } else if (r.first > s.first) {
    s.held = s.held.slice(Math.min(r.first - s.first, s.held.length));
    s.first = r.first;
    if (s.held.length === 0) s.markPos = r.pos;
  }
}

/** Writes one record at `at` and returns its CRC. */
function encode(buffer: Uint8Array, view: DataView, at: number, kind: number, type: number, pg: Uint8Array, pos: number, index: number, term: number, first: number, data: Uint8Array, prev: number, nonce: number): number {
  view.setUint32(at + 4, data.length, true);
  view.setUint32(at + 8, prev, true);
  view.setUint32(at + 12, kind | (type << 8) | (pg.length << 16), true);
  writeU64(view, at + 16, pos);
  writeU64(view, at + 24, index);
  writeU64(view, at + 32, term);
  writeU64(view, at + 40, first);
  buffer.set(pg, at + RECORD_HEADER);
  if (data.length !== 0) buffer.set(data, at + RECORD_HEADER + pg.length);
  const crc = crc32c(buffer.subarray(at + 4, at + RECORD_HEADER + pg.length + data.length), nonce);
  view.setUint32(at, crc, true);
  return crc;
}
