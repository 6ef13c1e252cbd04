/**
 * The DiskLog of one PG when the shard keeps every PG's raft log in its journal (shard-journal.ts):
 * a view onto the journal. It holds the PG's records in memory (index, term, type, data, and the
 * journal position of the record that last wrote each), serves reads and terms from there, and
 * turns append / truncateSuffix / trimPrefix into journal records.
 *
 * The view changes when the journal write holding an operation completed (as BlobDiskLog does): a
 * failed write leaves the log as it was. Operations of one view go to the journal one at a time,
 * in order: the next one is queued once the previous one's write finished, unless none is pending
 * (the common case: DiskRaftStorage issues a PG's writes one after another), so the appends of a
 * raft round's PGs all land in one batch. One exception: a trim that leaves records in the log
 * takes effect at once, since the records it drops are dead whether or not its record is written
 * (a crash can only bring them back, which a trim not yet durable may do).
 */
import { FastblockError, ErrorCode } from '../../kernel/errors.js';
import type { DiskLog, LogRecord } from '../../kernel/contracts/store.js';
import type { ShardJournal } from './shard-journal.js';

/** One record of a log, as replay rebuilds it. */
export interface Held {
  readonly term: number;
  readonly type: number;
  readonly data: Uint8Array;
  /** Journal position of the latest record that wrote this entry. */
  readonly pos: number;
}

const RESOLVED = Promise.resolve();

/** `work()`, its synchronous throw turned into a rejection. */
function attempt(work: () => Promise<void>): Promise<void> {
  try {
    return work();
  } catch (err) {
    return Promise.reject(err);
  }
}

export class JournalLog implements DiskLog {
  first = 1;
  /**
   * The records from `first`, as parallel arrays (no object per record: a shard holds the tails
   * of all its PGs, and the garbage collector walks whatever is kept); `positions` holds the
   * journal position of the latest record that wrote each entry (it moves when relocated).
   */
  terms: number[] = [];
  types: number[] = [];
  datas: Uint8Array[] = [];
  positions: number[] = [];
  /** Position of the latest written record that left this log empty (it names `first`); -1: none. */
  markPos = -1;
  /** Data bytes held (what relocating the log costs in the journal, less the record headers). */
  dataBytes = 0;
  /** Operations handed to the journal or waiting for the previous one. */
  pending = 0;
  /** Settles when this view's latest operation settled. */
  private last: Promise<void> = RESOLVED;
  closed = false;

  constructor(
    private readonly journal: ShardJournal,
    readonly pg: string,
    readonly pgBytes: Uint8Array,
  ) {}

  get firstIndex(): number {
    return this.first;
  }

  get lastIndex(): number {
    return this.first + this.terms.length - 1;
  }

  /** Records held. */
  get size(): number {
    return this.terms.length;
  }

  /** Where replaying the journal must start for this log to come back; Infinity: anywhere. */
  get anchor(): number {
    if (this.positions.length !== 0) return this.positions[0];
    return this.markPos >= 0 ? this.markPos : Infinity;
  }

  termAt(index: number): number | undefined {
    if (index < this.first || index > this.lastIndex) return undefined;
    return this.terms[index - this.first];
  }

  append(records: readonly LogRecord[]): Promise<void> {
    if (records.length === 0) return RESOLVED;
    try {
      this.checkOpen();
      if (this.pending === 0) return this.track(this.journal.append(this, this.checkRecords(records), records));
    } catch (err) {
      return Promise.reject(err);
    }
    return this.serial(() => this.journal.append(this, this.checkRecords(records), records));
  }

  read(from: number, to: number, maxBytes = Infinity): Promise<LogRecord[]> {
    try {
      this.checkOpen();
      if (from < this.first || to > this.lastIndex + 1 || from > to) {
        throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `log read [${from}, ${to}) outside [${this.first}, ${this.lastIndex + 1})`, {
          pg: this.pg,
          from,
          to,
          firstIndex: this.first,
          lastIndex: this.lastIndex,
        });
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const out: LogRecord[] = [];
    let bytes = 0;
    for (let index = from; index < to; index++) {
      const at = index - this.first;
      const data = this.datas[at];
      if (out.length !== 0 && bytes + data.length > maxBytes) break;
      bytes += data.length;
      out.push({ index, term: this.terms[at], type: this.types[at], data });
    }
    return Promise.resolve(out);
  }

  truncateSuffix(fromIndex: number): Promise<void> {
    // run() checks that the log is open (a closed one rejects, at once or in turn).
    const run = (): Promise<void> => {
      this.checkOpen();
      const from = Math.max(fromIndex, this.first);
      if (from > this.lastIndex) return RESOLVED;
      return this.journal.truncate(this, from);
    };
    if (this.pending === 0) return this.track(attempt(run));
    return this.serial(run);
  }

  trimPrefix(toIndex: number): Promise<void> {
    // run() checks that the log is open (a closed one rejects, at once or in turn).
    const run = (): Promise<void> => {
      this.checkOpen();
      if (toIndex <= this.first) return RESOLVED;
      if (toIndex <= this.lastIndex) {
        // Records stay: drop the trimmed ones now (see the file comment), record the trim after.
        this.dropFront(toIndex);
        return this.journal.trim(this, toIndex, false);
      }
      return this.journal.trim(this, toIndex, true);
    };
    if (this.pending === 0) return this.track(attempt(run));
    return this.serial(run);
  }

  /** Waits for this view's operations; the view refuses new ones afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await this.last.catch(() => undefined);
  }

  // ---- applied by the journal once the write holding an operation completed ----------------

  applyAppend(records: readonly LogRecord[], positions: readonly number[]): void {
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      this.terms.push(r.term);
      this.types.push(r.type);
      this.datas.push(r.data);
      this.positions.push(positions[i]);
      this.dataBytes += r.data.length;
    }
  }

  /** A relocation of [from, from + positions.length) was written: those still held moved there. */
  applyRelocation(from: number, positions: readonly number[]): void {
    const start = Math.max(from, this.first);
    const end = Math.min(from + positions.length, this.first + this.positions.length);
    for (let index = start; index < end; index++) this.positions[index - this.first] = positions[index - from];
  }

  applyTruncate(from: number, pos: number): void {
    const keep = Math.max(0, from - this.first);
    if (keep < this.terms.length) {
      for (let i = keep; i < this.datas.length; i++) this.dataBytes -= this.datas[i].length;
      this.terms.length = keep;
      this.types.length = keep;
      this.datas.length = keep;
      this.positions.length = keep;
    }
    if (this.terms.length === 0) this.markPos = pos;
  }

  /** A trim whose record was written; `emptying`: it left the log empty, starting at `to`. */
  applyTrim(to: number, pos: number, emptying: boolean): void {
    if (emptying) {
      this.restore(to, [], [], [], []);
      this.markPos = pos;
    } else if (to > this.first) {
      this.dropFront(to);
    }
  }

  /** Sets the log's records (replay). */
  restore(first: number, terms: number[], types: number[], datas: Uint8Array[], positions: number[]): void {
    this.first = first;
    this.terms = terms;
    this.types = types;
    this.datas = datas;
    this.positions = positions;
    this.dataBytes = 0;
    for (const d of datas) this.dataBytes += d.length;
  }

  private dropFront(to: number): void {
    const drop = Math.min(to - this.first, this.terms.length);
    for (let i = 0; i < drop; i++) this.dataBytes -= this.datas[i].length;
    this.terms.splice(0, drop);
    this.types.splice(0, drop);
    this.datas.splice(0, drop);
    this.positions.splice(0, drop);
    this.first = to;
  }

  // ---- ordering ----------------------------------------------------------------------------

  /** An operation handed to the journal now. */
  private track(op: Promise<void>): Promise<void> {
    if (op === RESOLVED) return op;
    this.pending++;
    this.last = op.then(this.settled, this.settled);
    return op;
  }

  /** An operation handed to the journal once the previous one settled. */
  private serial(work: () => Promise<void>): Promise<void> {
    this.pending++;
    const run = this.last.then(work);
    this.last = run.then(this.settled, this.settled);
    return run;
  }

  private readonly settled = (): void => {
    this.pending--;
  };

  /** Bytes of data in the records; throws unless they follow the log's last index. */
  private checkRecords(records: readonly LogRecord[]): number {
    this.checkOpen();
    let expected = this.lastIndex + 1;
    let total = 0;
    for (const r of records) {
      if (r.index !== expected || !Number.isSafeInteger(r.term) || r.term < 0 || !(r.type >= 0 && r.type <= 255)) {
        throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `log append out of order or malformed at index ${r.index}`, { pg: this.pg, index: r.index, expected, term: r.term, type: r.type });
      }
      expected++;
      total += r.data.length;
    }
    return total;
  }

  private checkOpen(): void {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, `log of PG ${this.pg} is closed`, { pg: this.pg });
  }
}
