/**
 * A write-back cache in front of a BlockVolume, for frontends that offer the guest a volatile
 * write cache (virtio-blk's VIRTIO_BLK_F_FLUSH): what librbd's cache and its persistent write log
 * are to Ceph. A write is acknowledged once it is a record in the write-back log (WriteBackLog: a
 * file, on tmpfs by default, that outlives the process), and goes to the volume in the background;
 * flush() resolves once every write acknowledged before it is durable in the volume. So a killed
 * and restarted gateway loses nothing it acknowledged (the log is replayed when the volume is next
 * opened), and a host crash loses what a disk's cache would: writes the guest never flushed.
 *
 * Order: a record goes to the volume only after every earlier record it overlaps (per block) has;
 * discards and write-zeroes are barriers (after everything before them, before everything after).
 * A read of bytes that pending records hold is a copy from the ring; a read that also needs the
 * volume's bytes waits for the write-back of the records it overlaps, then reads the volume (as
 * does any read while a discard or write-zeroes is pending). A write larger than
 * an eighth of the log goes around it: new records wait while everything before it drains, the
 * log's tail is persisted past them (so no replay can write older data over it), and it runs.
 *
 * Grouping: over a volume that takes writeMany (the client library's image), the oldest ready
 * write goes back with the other ready writes of its object in one call, which the image sends as
 * one request. Under load the ring holds many writes per object, and one request's fixed cost
 * (the RPC, the raft proposal, the journal record, the reply: most of what a 4 KiB write costs
 * the gateway and the OSD) is then spread over all of them. With holdMs a write stays that long
 * in the log, so that the writes of its object gather, unless something waits for it (a flush, a
 * FUA write, a read of the volume's bytes, a close, a ring over half full); without, it goes as
 * soon as fewer than maxInFlight calls are in progress, grouped only with what waited meanwhile.
 *
 * Absorbed writes: a write that covers the whole of an earlier one queued in the log (held, not
 * sent), which nothing waits for (no flush, FUA write or read asked for it), takes its place: the
 * earlier one is let go unwritten, as a page cache rewrites a dirty page. The log keeps both until
 * the later one is in the volume, so a replay writes them in order.
 *
 * Failures: a write-back that fails is retried with backoff, its dependents waiting, as long as
 * the error may pass (timeouts, no leader, a full cluster); one that cannot (the image is gone, the
 * range is invalid) is dropped with an error logged, and the next flush() reports it once, as
 * Linux reports a writeback error to the next fsync.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { Logger } from 'pino';
import type { BlockVolume, BlockWriteOptions } from '../contracts/block.js';
import { assert, ErrorCode, FastblockError, isFastblockError } from '../errors.js';
import { kernelAddon } from '../native.js';
import { RecordKind, WriteBackLog } from './write-back-log.js';

export interface WriteBackOptions {
  /** The log file (one per volume). */
  readonly path: string;
  /** Bytes of the log's ring: the most acknowledged data not yet in the volume. */
  readonly capacityBytes: number;
  readonly log: Logger;
  /** Most write-backs in flight to the volume at once. */
  readonly maxInFlight?: number;
  /** First retry delay of a failed write-back (ms); doubles per attempt up to 5 s. */
  readonly retryMs?: number;
  /**
   * How long a write may stay in the log before its write-back starts (ms; default 0, at once),
   * so that later writes of its object gather with it into one request. Nothing that waits for a
   * write-back waits for this: a flush, a FUA write, a read of the volume's bytes, a close, and a
   * ring over half full start what they need at once.
   */
  readonly holdMs?: number;
}

export interface WriteBackStats {
  readonly capacityBytes: number;
  /** Ring bytes in use (records not yet known to be in the volume, plus padding). */
  readonly usedBytes: number;
  /** Data bytes acknowledged and not yet in the volume. */
  readonly dirtyBytes: number;
  readonly dirtyRecords: number;
  readonly inFlight: number;
  /** Write-backs that failed and were retried, since open. */
  readonly retries: number;
  /** Writes let go unwritten, since open: a later write covered them while they waited. */
  readonly absorbed: number;
  /** Records replayed from the log when the volume was opened. */
  readonly replayed: number;
}

/** A record of the log, from append until it is in the volume. */
interface Pending {
  readonly kind: RecordKind;
  readonly seq: number;
  /** Where its append began (a PAD before it counts) and that position's sequence number. */
  readonly start: number;
  readonly startSeq: number;
  readonly offset: number;
  readonly length: number;
  readonly data: Uint8Array | undefined;
  readonly barrier: boolean;
  /** Earlier records it waits for. */
  waitingOn: number;
  dependents: Pending[] | undefined;
  /** The last record linked after this one: a write over many blocks links to it once. */
  lastDependent: Pending | undefined;
  done: boolean;
  /** Set when the record was dropped (a permanent failure). */
  error: unknown;
  attempts: number;
  waiters: (() => void)[] | undefined;
  /** In the ready queue (and its group's list), not yet issued. */
  isReady: boolean;
  /** Written back on its own, never in a group: its group failed for good, and it gets its own verdict. */
  alone: boolean;
  /** When it was appended (performance.now(); 0 for a replayed record): its hold ends holdMs later. */
  readonly appendedAt: number;
}

/**
 * An operation waiting its turn: an append waits for ring space (`dataBytes` of data), a write
 * around the log (`around`) for nothing, but everything behind it waits for it to finish.
 */
interface Queued {
  readonly dataBytes: number;
  readonly around: boolean;
  readonly run: () => void;
}

const MAX_RETRY_MS = 5000;
/**
 * A group (the ready writes of one object, sent as one writeMany) stops at this many records or
 * bytes: what one request of the client library carries (MAX_EXTENTS, MAX_DATA_LENGTH). A whole
 * object's writes in one request let the client merge the adjacent ones: a flush after many random
 * writes sends a few long extents per object, not one 4 KiB write per record.
 */
const MAX_GROUP_RECORDS = 1024;
const MAX_GROUP_BYTES = 4 << 20;

const OPEN = new Set<WriteBackVolume>();
/** The write-back caches open in this process, from open to close or abandon (what /metrics reports). */
export const openWriteBackVolumes: ReadonlySet<WriteBackVolume> = OPEN;
const RESOLVED: Promise<void> = Promise.resolve();

/** Errors after which a write-back can never succeed: retrying would hold the log forever. */
function permanent(err: unknown): boolean {
  return isFastblockError(err, ErrorCode.INVALID_ARGUMENT) || isFastblockError(err, ErrorCode.NOT_FOUND);
}

/**
 * Opens the write-back cache of `inner` at `options.path`. A log left by an earlier process is
 * taken over (its records are written back first, in order); a log held by a live process is
 * refused.
 */
export function openWriteBack(inner: BlockVolume, options: WriteBackOptions): WriteBackVolume {
  const lock = takeLock(`${options.path}.lock`);
  try {
    const { log, state } = WriteBackLog.open(options.path, inner.name, options.capacityBytes);
    return new WriteBackVolume(inner, log, state, lock, options);
  } catch (err) {
    releaseLock(lock);
    throw err;
  }
}

export class WriteBackVolume implements BlockVolume {
  readonly name: string;
  readonly blockSize: number;
  private readonly maxRecordData: number;
  private readonly maxInFlight: number;
  private readonly retryMs: number;
  private readonly log: Logger;

  /** Records not yet in the volume, in sequence order, from `front`. */
  private records: Pending[] = [];
  private front = 0;
  /** Per block: the latest record writing it that is not in the volume yet. */
  private readonly lastWriter = new Map<number, Pending>();
  /** The latest discard or write-zeroes not in the volume yet. */
  private barrier: Pending | undefined;
  /** Records that can go to the volume, oldest first (entries already sent with their group are skipped). */
  private ready: Pending[] = [];
  private readyFront = 0;
  /** With a volume that takes writeMany: the ready writes of each group (object), oldest first. */
  private readonly readyByGroup = new Map<number, Pending[]>();
  private readonly groupBytes: number | undefined;
  /** Calls to the volume in progress (a group counts once). */
  private inFlight = 0;
  private readonly holdMs: number;
  /** Records up to this sequence number are wanted in the volume now: their hold is over. */
  private hurriedSeq = 0;
  private holdTimer: NodeJS.Timeout | undefined;
  private holdDue = Infinity;

  private head: number;
  private nextSeq: number;
  /** The tail the file's header names: ring space from here on is not free. */
  private persistedTail: number;
  private persistScheduled = false;
  private readonly queued: Queued[] = [];
  /** Writes around the log in progress: appends wait. */
  private gated = 0;
  private readonly flushWaiters: { seq: number; resolve: () => void }[] = [];
  private stickyError: unknown;
  private closing = false;
  private closed = false;

  private dirtyBytes = 0;
  private dirtyRecords = 0;
  private retries = 0;
  private absorbed = 0;
  private readonly replayed: number;

  constructor(
    private readonly inner: BlockVolume,
    private readonly file: WriteBackLog,
    state: ReturnType<typeof WriteBackLog.open>['state'],
    private readonly lock: string,
    options: WriteBackOptions,
  ) {
    this.name = inner.name;
    this.blockSize = inner.blockSize;
    this.maxRecordData = Math.floor(file.capacity / 8);
    this.maxInFlight = options.maxInFlight ?? 64;
    const groupBytes = inner.writeMany !== undefined ? inner.writeGroupBytes : undefined;
    this.groupBytes = groupBytes !== undefined && groupBytes >= this.blockSize ? groupBytes : undefined;
    this.retryMs = options.retryMs ?? 100;
    this.holdMs = options.holdMs ?? 0;
    this.log = options.log;
    this.head = state.head;
    this.nextSeq = state.nextSeq;
    this.persistedTail = state.tail;
    this.replayed = state.records.length;
    if (state.records.length > 0) {
      const bytes = state.records.reduce((sum, r) => sum + (r.data?.byteLength ?? 0), 0);
      this.log.warn({ path: file.path, records: state.records.length, bytes }, 'write-back log replayed: writing back what an earlier process acknowledged');
    }
    for (const r of state.records) this.track(r.kind, r.seq, r.position, r.seq, r.offset, r.length, r.data, 0);
    OPEN.add(this);
  }

  get size(): number {
    return this.inner.size;
  }

  stats(): WriteBackStats {
    return {
      capacityBytes: this.file.capacity,
      usedBytes: this.head - this.persistedTail,
      dirtyBytes: this.dirtyBytes,
      dirtyRecords: this.dirtyRecords,
      inFlight: this.inFlight,
      retries: this.retries,
      absorbed: this.absorbed,
      replayed: this.replayed,
    };
  }

  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (this.lastWriter.size > 0 && this.barrier === undefined) {
      const served = this.fromRing(offset, length, into);
      if (served !== undefined) return Promise.resolve(served);
    }
    const waits = this.pendingOver(offset, length);
    if (waits === undefined) return this.inner.read(offset, length, into);
    return Promise.all(waits).then(() => this.inner.read(offset, length, into));
  }

  write(offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions): Promise<void> {
    if (this.closing) return closedError(this.name);
    let length = 0;
    for (const part of data) length += part.byteLength;
    if (length > this.maxRecordData) return this.around(() => this.inner.write(offset, data, options));
    return this.append(RecordKind.WRITE, offset, length, data, options?.fua === true);
  }

  discard(offset: number, length: number): Promise<void> {
    if (this.closing) return closedError(this.name);
    return this.append(RecordKind.DISCARD, offset, length, undefined, false);
  }

  writeZeroes(offset: number, length: number, options?: BlockWriteOptions): Promise<void> {
    if (this.closing) return closedError(this.name);
    return this.append(RecordKind.ZEROES, offset, length, undefined, options?.fua === true);
  }

  async flush(): Promise<void> {
    this.reportError();
    const last = this.nextSeq - 1;
    this.hurry(last);
    if (this.firstPendingSeq() <= last) await new Promise<void>((resolve) => this.flushWaiters.push({ seq: last, resolve }));
    this.reportError();
    await this.inner.flush();
  }

  /** Writes back everything, empties and removes the log, then closes the volume. */
  async close(): Promise<void> {
    if (this.closing) {
      // abandon()ed: the log stays; the volume is still ours to close.
      if (this.closed) await this.inner.close();
      return;
    }
    this.closing = true;
    // Behind everything queued; runs once every record is in the volume (and names an empty log).
    await this.around(() => RESOLVED);
    OPEN.delete(this);
    this.file.close();
    this.closed = true;
    clearTimeout(this.holdTimer);
    try {
      unlinkSync(this.file.path);
    } catch {
      // already gone
    }
    releaseLock(this.lock);
    await this.inner.close();
  }

  /**
   * Stops using the log without writing it back, as a killed process would: the next open (here or
   * in the next process) replays it. For a shutdown that must not wait on an unreachable cluster.
   * Write-backs in flight may still land; nothing new is issued.
   */
  abandon(): void {
    if (this.closed) return;
    this.closing = true;
    this.closed = true;
    clearTimeout(this.holdTimer);
    this.file.close();
    releaseLock(this.lock);
    OPEN.delete(this);
    this.log.warn({ path: this.file.path, dirtyBytes: this.dirtyBytes, dirtyRecords: this.dirtyRecords }, 'write-back log left for the next open to replay');
  }

  private reportError(): void {
    const err = this.stickyError;
    if (err === undefined) return;
    this.stickyError = undefined;
    throw new FastblockError(ErrorCode.IO_ERROR, `a write acknowledged by the write-back cache of ${this.name} could not be written back: ${(err as Error).message}`, { volume: this.name });
  }

  private append(kind: RecordKind, offset: number, length: number, data: readonly Uint8Array[] | undefined, fua: boolean): Promise<void> {
    const dataBytes = kind === RecordKind.WRITE ? length : 0;
    if (this.queued.length === 0 && this.gated === 0 && this.fits(dataBytes)) {
      let record: Pending;
      try {
        record = this.appendNow(kind, offset, length, data);
      } catch (err) {
        return Promise.reject(err);
      }
      return fua ? this.durable(record) : RESOLVED;
    }
    // Data views (guest memory) stay valid until this promise settles: the frontend holds them.
    return new Promise<void>((resolve, reject) => {
      this.queued.push({
        dataBytes,
        around: false,
        run: () => {
          try {
            const record = this.appendNow(kind, offset, length, data);
            if (fua) this.durable(record).then(resolve, reject);
            else resolve();
          } catch (err) {
            reject(err);
          }
        },
      });
      // A write waits for ring space: nothing held may wait longer.
      this.pump();
    });
  }

  private fits(dataBytes: number): boolean {
    return this.head - this.persistedTail + this.file.footprint(this.head, dataBytes) <= this.file.capacity;
  }

  private appendNow(kind: RecordKind, offset: number, length: number, data: readonly Uint8Array[] | undefined): Pending {
    const start = this.head;
    const startSeq = this.nextSeq;
    const { dataAt, next, seq } = this.file.append(start, startSeq, kind, offset, length, data);
    this.head = next;
    this.nextSeq = seq + 1;
    const view = kind === RecordKind.WRITE ? this.file.ring.subarray(dataAt, dataAt + length) : undefined;
    return this.track(kind, seq, start, startSeq, offset, length, view, this.holdMs === 0 ? 0 : performance.now());
  }

  /** Makes a logged record pending: links it after what it overlaps, and starts it if it can. */
  private track(kind: RecordKind, seq: number, start: number, startSeq: number, offset: number, length: number, data: Uint8Array | undefined, appendedAt: number): Pending {
    const barrier = kind !== RecordKind.WRITE;
    const record: Pending = {
      kind,
      seq,
      start,
      startSeq,
      offset,
      length,
      data,
      barrier,
      waitingOn: 0,
      dependents: undefined,
      lastDependent: undefined,
      done: false,
      error: undefined,
      attempts: 0,
      waiters: undefined,
      isReady: false,
      alone: false,
      appendedAt,
    };
    let absorbed = false;
    if (barrier) {
      for (let i = this.front; i < this.records.length; i++) this.link(this.records[i]!, record);
      this.barrier = record;
    } else {
      if (this.barrier !== undefined) this.link(this.barrier, record);
      const bs = this.blockSize;
      const last = Math.ceil((offset + length) / bs);
      for (let block = Math.floor(offset / bs); block < last; block++) {
        const before = this.lastWriter.get(block);
        if (before !== undefined) {
          if (this.absorbs(offset, length, before)) {
            // Settled first: its dependents (this record is not one yet) and blocks are let go.
            this.absorbed++;
            before.isReady = false;
            this.settle(before);
            absorbed = true;
          } else {
            this.link(before, record);
          }
        }
        this.lastWriter.set(block, record);
      }
    }
    this.records.push(record);
    this.dirtyBytes += data?.byteLength ?? 0;
    this.dirtyRecords++;
    if (absorbed) {
      // The ring before it may be free now, and writes it held back may go.
      this.advance();
      this.pump();
    }
    if (record.waitingOn === 0) this.makeReady(record);
    return record;
  }

  /**
   * Whether a write of [offset, offset+length) may take the place of `before`: an earlier write it
   * covers whole, queued to be sent (not in flight, not between retries), that nobody waits for.
   * Not one still waiting for an older write-back of its blocks: the new write would not wait for
   * that one, and could reach the volume first.
   */
  private absorbs(offset: number, length: number, before: Pending): boolean {
    return (
      before.kind === RecordKind.WRITE &&
      !before.done &&
      before.isReady &&
      before.waiters === undefined &&
      before.seq > this.hurriedSeq &&
      !this.closing &&
      before.offset >= offset &&
      before.offset + before.length <= offset + length
    );
  }

  private link(before: Pending, after: Pending): void {
    if (before.done || before.lastDependent === after) return;
    before.lastDependent = after;
    (before.dependents ??= []).push(after);
    after.waitingOn++;
  }

  private makeReady(record: Pending): void {
    this.enqueue(record);
    this.pump();
  }

  private enqueue(record: Pending): void {
    assert(!record.isReady && !record.done, 'a record is queued once, while pending');
    record.isReady = true;
    this.ready.push(record);
    const group = this.groupOf(record);
    if (group === undefined) return;
    const list = this.readyByGroup.get(group);
    if (list === undefined) this.readyByGroup.set(group, [record]);
    else list.push(record);
  }

  /**
   * The group a write goes back in, if the volume takes writeMany: the aligned range (object) that
   * holds it whole. Ready writes never overlap one another (a write waits for every earlier one
   * over its blocks), so any of them may share a call.
   */
  private groupOf(record: Pending): number | undefined {
    const bytes = this.groupBytes;
    if (bytes === undefined || record.kind !== RecordKind.WRITE || record.alone) return undefined;
    const group = Math.floor(record.offset / bytes);
    return Math.floor((record.offset + record.length - 1) / bytes) === group ? group : undefined;
  }

  /**
   * Sends ready records, oldest first, while fewer than maxInFlight calls are in progress. The
   * oldest ready write takes the other ready writes of its group along (up to MAX_GROUP_*): under
   * load the ring holds many writes per object, and one request for them costs the gateway and the
   * OSD little more than one for a single write. Under light load each write goes alone, at once.
   */
  private pump(): void {
    if (this.closed) return;
    while (this.inFlight < this.maxInFlight && this.readyFront < this.ready.length) {
      const record = this.ready[this.readyFront]!;
      if (record.isReady && this.holding(record)) break;
      this.ready[this.readyFront++] = undefined as unknown as Pending;
      if (!record.isReady) continue;
      const group = this.groupOf(record);
      if (group === undefined) {
        record.isReady = false;
        this.issue(record);
        continue;
      }
      const list = this.readyByGroup.get(group)!;
      // The record that came up leads (it is nearly always the list's first: a retried record can
      // come up from its earlier place in the queue) and the oldest others follow.
      const at = list[0] === record ? 0 : list.indexOf(record);
      assert(at >= 0, 'a ready write is in its group');
      list.splice(at, 1);
      record.isReady = false;
      const others: Pending[] = [];
      let bytes = record.length;
      let seen = 0;
      for (; seen < list.length; seen++) {
        const other = list[seen]!;
        // Absorbed by a later write while it waited here: gone.
        if (!other.isReady) continue;
        if (others.length + 1 >= MAX_GROUP_RECORDS || bytes + other.length > MAX_GROUP_BYTES) break;
        bytes += other.length;
        other.isReady = false;
        others.push(other);
      }
      list.splice(0, seen);
      if (list.length === 0) this.readyByGroup.delete(group);
      if (others.length === 0) this.issue(record);
      else this.issueGroup([record, ...others]);
    }
    if (this.readyFront === this.ready.length) {
      this.ready = [];
      this.readyFront = 0;
    }
  }

  /**
   * Whether `record` (the oldest ready one) should wait longer in the log: its hold is not over,
   * nobody waits for it, and the ring has room. If so, a timer pumps again when the hold ends.
   */
  private holding(record: Pending): boolean {
    if (this.holdMs === 0 || record.seq <= this.hurriedSeq || this.closing || this.queued.length > 0) return false;
    if ((this.head - this.persistedTail) * 2 >= this.file.capacity) return false;
    const due = record.appendedAt + this.holdMs;
    const now = performance.now();
    if (now >= due) return false;
    if (due < this.holdDue) {
      clearTimeout(this.holdTimer);
      this.holdDue = due;
      this.holdTimer = setTimeout(() => {
        this.holdTimer = undefined;
        this.holdDue = Infinity;
        this.pump();
      }, Math.ceil(due - now));
    }
    return true;
  }

  /** Records up to `seq` are waited for: they go to the volume now, whatever their hold. */
  private hurry(seq: number): void {
    if (this.holdMs === 0 || seq <= this.hurriedSeq) return;
    this.hurriedSeq = seq;
    this.pump();
  }

  private issue(record: Pending): void {
    this.inFlight++;
    let issued: Promise<unknown>;
    try {
      issued =
        record.kind === RecordKind.WRITE
          ? this.inner.write(record.offset, [record.data!])
          : record.kind === RecordKind.DISCARD
            ? this.inner.discard(record.offset, record.length)
            : this.inner.writeZeroes(record.offset, record.length);
    } catch (err) {
      issued = Promise.reject(err);
    }
    issued.then(
      () => {
        this.inFlight--;
        this.written(record);
      },
      (err: unknown) => {
        this.inFlight--;
        this.failed(record, err);
      },
    );
  }

  /** Writes of one group as one writeMany; each record is done, retried or dropped as a single one would be. */
  private issueGroup(batch: Pending[]): void {
    this.inFlight++;
    let issued: Promise<unknown>;
    try {
      issued = this.inner.writeMany!(batch.map((r) => ({ offset: r.offset, data: [r.data!] })));
    } catch (err) {
      issued = Promise.reject(err);
    }
    issued.then(
      () => {
        this.inFlight--;
        // Settled one by one, moved past and pumped once for the group.
        for (const record of batch) this.settle(record);
        this.advance();
        this.pump();
      },
      (err: unknown) => {
        this.inFlight--;
        if (permanent(err)) {
          // One write may be what the volume refuses: each goes again alone and gets its own verdict.
          this.log.warn({ err, records: batch.length }, 'write-back of a group refused: its writes go again one by one');
          for (const record of batch) {
            record.alone = true;
            this.enqueue(record);
          }
          this.pump();
          return;
        }
        for (const record of batch) this.failed(record, err);
      },
    );
  }

  private failed(record: Pending, err: unknown): void {
    record.attempts++;
    if (permanent(err)) {
      this.log.error({ err, offset: record.offset, length: record.length, seq: record.seq }, 'write-back failed for good: the write is dropped and the next flush reports it');
      this.stickyError = err;
      record.error = err;
      this.written(record);
      return;
    }
    this.retries++;
    const delay = Math.min(MAX_RETRY_MS, this.retryMs * 2 ** Math.min(record.attempts - 1, 16));
    if (record.attempts === 1 || record.attempts % 10 === 0) {
      this.log.warn({ err, offset: record.offset, length: record.length, attempts: record.attempts, retryInMs: delay }, 'write-back failed: retrying');
    }
    setTimeout(() => this.makeReady(record), delay);
    this.pump();
  }

  private written(record: Pending): void {
    this.settle(record);
    this.advance();
    this.pump();
  }

  /** Marks the record in the volume: its blocks, its dependents and its waiters are let go. */
  private settle(record: Pending): void {
    assert(!record.done, 'a record is written back once');
    record.done = true;
    this.dirtyBytes -= record.data?.byteLength ?? 0;
    this.dirtyRecords--;
    if (record.barrier) {
      if (this.barrier === record) this.barrier = undefined;
    } else {
      const bs = this.blockSize;
      const last = Math.ceil((record.offset + record.length) / bs);
      for (let block = Math.floor(record.offset / bs); block < last; block++) if (this.lastWriter.get(block) === record) this.lastWriter.delete(block);
    }
    const dependents = record.dependents;
    record.dependents = undefined;
    record.lastDependent = undefined;
    if (dependents !== undefined) for (const d of dependents) if (--d.waitingOn === 0) this.enqueue(d);
    const waiters = record.waiters;
    record.waiters = undefined;
    if (waiters !== undefined) for (const w of waiters) w();
  }

  /** Moves the front past records in the volume; flushes waiting for them resolve. */
  private advance(): void {
    const records = this.records;
    let front = this.front;
    while (front < records.length && records[front]!.done) records[front++] = undefined as unknown as Pending;
    if (front === this.front) return;
    if (front === records.length) {
      this.records = [];
      this.front = 0;
    } else if (front > 1024 && front * 2 > records.length) {
      this.records = records.slice(front);
      this.front = 0;
    } else {
      this.front = front;
    }
    const firstPending = this.firstPendingSeq();
    for (let i = 0; i < this.flushWaiters.length; ) {
      const w = this.flushWaiters[i]!;
      if (w.seq < firstPending) {
        this.flushWaiters.splice(i, 1);
        w.resolve();
      } else {
        i++;
      }
    }
    if (!this.persistScheduled) {
      this.persistScheduled = true;
      setImmediate(() => this.persist());
    }
  }

  private firstPendingSeq(): number {
    return this.front < this.records.length ? this.records[this.front]!.seq : this.nextSeq;
  }

  /** Names the new tail in the file's header, which frees the ring before it, and lets waiting appends in. */
  private persist(): void {
    this.persistScheduled = false;
    if (this.closed) return;
    const first = this.front < this.records.length ? this.records[this.front] : undefined;
    const tail = first ? first.start : this.head;
    if (tail !== this.persistedTail) {
      this.file.writeHeader(tail, first ? first.startSeq : this.nextSeq);
      this.persistedTail = tail;
    }
    this.admit();
  }

  /** Lets waiting operations in, in order, while the first has room (a write around the log needs none, but holds the rest). */
  private admit(): void {
    while (this.queued.length > 0 && this.gated === 0) {
      const next = this.queued[0]!;
      if (!next.around && !this.fits(next.dataBytes)) return;
      this.queued.shift();
      next.run();
    }
  }

  /**
   * The bytes of [offset, offset+length) when pending records hold all of them (the newest write
   * of each block covers what the read needs of it): a read of what was just written is a copy
   * from the ring, not a wait for the write-back. Undefined when any byte must come from the volume.
   */
  private fromRing(offset: number, length: number, into: Uint8Array | undefined): Uint8Array | undefined {
    const bs = this.blockSize;
    const end = offset + length;
    const last = Math.ceil(end / bs);
    for (let block = Math.floor(offset / bs); block < last; block++) {
      const record = this.lastWriter.get(block);
      if (record === undefined || record.data === undefined) return undefined;
      if (record.offset > Math.max(offset, block * bs) || record.offset + record.length < Math.min(end, (block + 1) * bs)) return undefined;
    }
    const out = into ?? new Uint8Array(length);
    for (let block = Math.floor(offset / bs); block < last; block++) {
      const record = this.lastWriter.get(block)!;
      const from = Math.max(offset, block * bs);
      const to = Math.min(end, (block + 1) * bs);
      out.set(record.data!.subarray(from - record.offset, to - record.offset), from - offset);
    }
    return out;
  }

  /** Promises of the pending records a read of [offset, offset+length) must wait for; undefined if none. */
  private pendingOver(offset: number, length: number): Promise<void>[] | undefined {
    let waits: Promise<void>[] | undefined;
    if (this.barrier !== undefined) (waits ??= []).push(this.doneOf(this.barrier));
    if (this.lastWriter.size === 0) return waits;
    const bs = this.blockSize;
    const last = Math.ceil((offset + length) / bs);
    let previous: Pending | undefined;
    for (let block = Math.floor(offset / bs); block < last; block++) {
      const record = this.lastWriter.get(block);
      if (record === undefined || record === previous) continue;
      previous = record;
      (waits ??= []).push(this.doneOf(record));
    }
    return waits;
  }

  private doneOf(record: Pending): Promise<void> {
    if (record.done) return RESOLVED;
    // It depends on every earlier record over its blocks, which have lower numbers.
    this.hurry(record.seq);
    return new Promise<void>((resolve) => (record.waiters ??= []).push(resolve));
  }

  /** Settles when the record is in the volume; rejects if it was dropped. */
  private durable(record: Pending): Promise<void> {
    return this.doneOf(record).then(() => {
      if (record.error !== undefined) throw record.error;
    });
  }

  /** Runs `op` on the volume with nothing before it pending and nothing after it started. */
  private around(op: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const start = (): void => {
        this.gated++;
        this.hurry(this.nextSeq - 1);
        void this.waitForEmpty().then(async () => {
          try {
            // No replay may write a record older than this write over it.
            this.file.writeHeader(this.head, this.nextSeq);
            this.persistedTail = this.head;
            await op();
            resolve();
          } catch (err) {
            reject(err);
          } finally {
            this.gated--;
            this.admit();
          }
        });
      };
      if (this.queued.length === 0 && this.gated === 0) start();
      else this.queued.push({ dataBytes: 0, around: true, run: start });
    });
  }

  /** Resolves once every record is in the volume (appends are gated meanwhile, so none is added). */
  private waitForEmpty(): Promise<void> {
    if (this.front === this.records.length) return RESOLVED;
    // The front record is never done here: written() moves the front before its waiters run.
    return this.doneOf(this.records[this.front]!).then(() => this.waitForEmpty());
  }
}

function closedError(name: string): Promise<never> {
  return Promise.reject(new FastblockError(ErrorCode.CLOSED, `volume ${name} is closing`, { volume: name }));
}

/**
 * Lock files this process holds, and the descriptor that holds the flock of each (undefined when
 * the kernel addon has no flock and the lock is a PID file).
 */
const HELD = new Map<string, number | undefined>();

/**
 * Takes `path` as this process's lock, or throws BUSY naming the process that holds it.
 *
 * With the kernel addon: an flock on the file, which the kernel drops when the holder's descriptor
 * closes, however the process ends; the PID written in it is for the message only. Without it: the
 * file names its owner by PID and start time (a PID alone is reused, by the next container's
 * gateway as often as not), and one whose owner is gone is taken over; two processes taking over
 * the same dead owner's lock at the same moment can then both succeed.
 */
function takeLock(path: string): string {
  if (HELD.has(path)) throw new FastblockError(ErrorCode.BUSY, `write-back log ${path.slice(0, -5)} is already open in this process`, { path });
  const me = `${process.pid} ${startTimeOf(process.pid) ?? 0}`;
  const flock = kernelAddon?.flockExclusive;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (flock !== undefined ? takeFlock(path, me, flock) : takePidFile(path, me)) return path;
  }
  throw new FastblockError(ErrorCode.BUSY, `could not take the lock ${path}`, { path });
}

/** One attempt at the flock of `path`: true when held, false to try again, BUSY when another holds it. */
function takeFlock(path: string, me: string, flock: (fd: number) => number): boolean {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  const errno = flock(fd);
  if (errno !== 0) {
    closeSync(fd);
    if (errno === osConstants.errno.EWOULDBLOCK) throw busy(path);
    throw new FastblockError(ErrorCode.IO_ERROR, `flock of ${path} failed (errno ${errno})`, { path, errno });
  }
  // The holder may have released it (unlinked, then closed) between our open and our flock: we then
  // hold the lock of a file nobody else opens. Only the file at the path counts.
  const held = fstatSync(fd);
  const now = statSync(path, { throwIfNoEntry: false });
  if (now === undefined || now.ino !== held.ino || now.dev !== held.dev) {
    closeSync(fd);
    return false;
  }
  ftruncateSync(fd, 0);
  writeSync(fd, me, 0);
  HELD.set(path, fd);
  return true;
}

/** One attempt at a PID lock file (no flock): true when taken, false to try again, BUSY when its owner lives. */
function takePidFile(path: string, me: string): boolean {
  try {
    const fd = openSync(path, 'wx');
    writeSync(fd, me);
    closeSync(fd);
    HELD.set(path, undefined);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  let content: string;
  try {
    content = readFileSync(path, 'utf8');
  } catch {
    return false; // removed meanwhile
  }
  const [pid, start] = content.split(' ').map(Number);
  if (pid !== undefined && pid > 0 && alive(pid, start ?? 0) && content !== me) throw busy(path, pid);
  // Another process taking over the same stale lock may have replaced it meanwhile: remove only
  // what was read (the window left is between this read and the unlink).
  if (readFileSync(path, 'utf8') === content) unlinkSync(path);
  return false;
}

function busy(path: string, owner?: number): FastblockError {
  let pid = owner;
  if (pid === undefined) {
    try {
      pid = Number(readFileSync(path, 'utf8').split(' ')[0]) || undefined;
    } catch {
      // gone meanwhile
    }
  }
  return new FastblockError(ErrorCode.BUSY, `write-back log ${path.slice(0, -5)} is in use by ${pid === undefined ? 'another process' : `process ${pid}`}`, { path, owner: pid });
}

/** A process's start time in clock ticks since boot (Linux /proc), or undefined. */
function startTimeOf(pid: number): number | undefined {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]);
  } catch {
    return undefined;
  }
}

/** Whether the process that wrote a lock (pid, start time) still runs: the same PID started later is another one. */
function alive(pid: number, start: number): boolean {
  const now = startTimeOf(pid);
  if (now !== undefined) return start === 0 || now === start;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Unlinks the lock, then lets its flock go: whoever opens the path next finds a new file. */
function releaseLock(path: string): void {
  const fd = HELD.get(path);
  HELD.delete(path);
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
  if (fd !== undefined) closeSync(fd);
}
