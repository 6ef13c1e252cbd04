/**
 * disk_log: the raft log of one PG in one blob, used as a ring.
 *
 * Blob page 0 is the log header; the rest is a ring of bytes holding records back to back at
 * increasing logical positions (physical = PAGE + (pos - base) mod capacity). A record:
 *
 *   0 u32 CRC32C of bytes 4.. (header and data)   24 u64 index
 *   4 u32 data length                              32 u64 term
 *   8 u32 generation                               40 u8 type, 7 bytes 0
 *  12 u32 CRC of the previous record               48 data
 *  16 u64 logical position
 *
 * Appends rewrite the partial tail page (kept in memory) plus the new pages: one write per batch.
 * On open the log is rebuilt by scanning from the header's head: a record counts only if its CRC,
 * position, index, previous-record CRC and generation (never lower than its predecessor's) all
 * agree, so a torn append, a stale record from an earlier lap, or one truncated away ends the log.
 * truncateSuffix bumps the generation and zeroes the rest of the new tail page.
 *
 * Space: the ring is thin, and a ring cluster is written with zeroes before its first record
 * (Blob.materialize), so appends are plain overwrites on a file device. trimPrefix moves the head
 * in the header; the ring space before it is reused only once that header is durable. A full ring
 * grows: new clusters, the live records copied into them, a flush, the header switched to the new
 * mapping, a flush — the old mapping stays intact until the new one is durable.
 */
import { FastblockError, ErrorCode, assert } from '../../kernel/errors.js';
import type { DiskLog, LogRecord } from '../../kernel/contracts/store.js';
import { bufferPool } from './bdev/aligned-memory.js';
import type { Blob } from './blobstore/blob.js';
import { PAGE_SIZE, pageIntact, readU64, sealPage, viewOf, writeU64 } from './blobstore/layout.js';
import { crc32c } from './crc32c.js';

const P = PAGE_SIZE;
const RECORD_HEADER = 48;
const MAGIC = 'FBLOG001';
const SCAN_WINDOW = 256 * 1024;
const COPY_CHUNK = 1 << 20;

interface Header {
  generation: number;
  headPrevCrc: number;
  head: number;
  firstIndex: number;
  base: number;
  capacity: number;
}

const floorPage = (x: number): number => Math.floor(x / P) * P;
const ceilPage = (x: number): number => Math.ceil(x / P) * P;

function encodeHeader(h: Header, page: Uint8Array): void {
  page.fill(0);
  const view = viewOf(page);
  page.set(new TextEncoder().encode(MAGIC), 0);
  view.setUint32(8, h.generation, true);
  view.setUint32(12, h.headPrevCrc, true);
  writeU64(view, 16, h.head);
  writeU64(view, 24, h.firstIndex);
  view.setFloat64(32, h.base, true);
  writeU64(view, 40, h.capacity);
  sealPage(page);
}

function decodeHeader(page: Uint8Array): Header | undefined {
  if (new TextDecoder().decode(page.subarray(0, 8)) !== MAGIC || !pageIntact(page)) return undefined;
  const view = viewOf(page);
  return {
    generation: view.getUint32(8, true),
    headPrevCrc: view.getUint32(12, true),
    head: readU64(view, 16),
    firstIndex: readU64(view, 24),
    base: view.getFloat64(32, true),
    capacity: readU64(view, 40),
  };
}

export interface DiskLogHost {
  readonly pg: string;
  /** A flush of the whole shard (md sync + device flush); the log's barrier when it grows. */
  flush(): Promise<void>;
  /** A header naming a trimmed head was written: the next flush must call beforeFlush() (only those logs pay for it). */
  headerWritten(log: BlobDiskLog): void;
}

export class BlobDiskLog implements DiskLog {
  private first: number;
  /** Per held record, from firstIndex: logical position, term, CRC. */
  private positions: number[] = [];
  private terms: number[] = [];
  private crcs: number[] = [];
  private tail: number;
  private readonly tailPage = Buffer.alloc(P);
  private prevCrc: number;
  private generation: number;
  private headPrevCrc: number;
  private head: number;
  private base: number;
  private capacity: number;
  /** Head in the last header written, and in the last header known durable. */
  private writtenHead: number;
  private durableHead: number;
  private queue: Promise<void> = Promise.resolve();
  /** Operations queued or running: an append issued while there are none skips the queue. */
  private pending = 0;
  private closed = false;

  private constructor(
    readonly blob: Blob,
    private readonly host: DiskLogHost,
    header: Header,
  ) {
    this.first = header.firstIndex;
    this.head = this.tail = this.writtenHead = this.durableHead = header.head;
    this.prevCrc = this.headPrevCrc = header.headPrevCrc;
    this.generation = header.generation;
    this.base = header.base;
    this.capacity = header.capacity;
  }

  /** A new, empty log in `blob` (already created with its xattrs, size 0). */
  static async create(blob: Blob, host: DiskLogHost, firstIndex = 1): Promise<BlobDiskLog> {
    blob.resize(1);
    await blob.materialize(0, 1);
    const header: Header = { generation: 1, headPrevCrc: 0, head: 0, firstIndex, base: 0, capacity: blob.sizeBytes - P };
    const log = new BlobDiskLog(blob, host, header);
    await log.writeHeader();
    return log;
  }

  /** Recovers the log in `blob`: header, then a scan for the records that chain from its head. */
  static async open(blob: Blob, host: DiskLogHost): Promise<BlobDiskLog> {
    const page = Buffer.alloc(P);
    await blob.read(0, page);
    const header = decodeHeader(page);
    // A blob larger than the header's ring is a grow that did not finish: the old ring still holds.
    if (header === undefined || header.capacity > blob.sizeBytes - P || header.capacity % P !== 0 || header.capacity <= 0) {
      throw new FastblockError(ErrorCode.CORRUPT, `log of PG ${host.pg} has a damaged header`, { pg: host.pg, blobId: blob.id });
    }
    const log = new BlobDiskLog(blob, host, header);
    await log.scan();
    return log;
  }

  get firstIndex(): number {
    return this.first;
  }

  get lastIndex(): number {
    return this.first + this.positions.length - 1;
  }

  termAt(index: number): number | undefined {
    if (index < this.first || index > this.lastIndex) return undefined;
    return this.terms[index - this.first];
  }

  append(records: readonly LogRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    this.checkOpen();
    if (this.pending === 0) {
      // Nothing queued (a raft round appends once the previous round's write completed): when the
      // tail has room, the write is issued now, without the queue's promise layers.
      let total: number;
      try {
        total = this.checkRecords(records);
      } catch (err) {
        return Promise.reject(err);
      }
      if (this.hasRoom(total)) {
        this.pending++;
        const run = this.writeRecords(records, total);
        this.queue = run.then(this.settled, this.settled);
        return run;
      }
    }
    return this.serial(() => this.appendNow(records));
  }

  async read(from: number, to: number, maxBytes = Infinity): Promise<LogRecord[]> {
    this.checkOpen();
    if (from < this.first || to > this.lastIndex + 1 || from > to) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `log read [${from}, ${to}) outside [${this.first}, ${this.lastIndex + 1})`, {
        pg: this.host.pg,
        from,
        to,
        firstIndex: this.first,
        lastIndex: this.lastIndex,
      });
    }
    if (from === to) return [];
    let end = from + 1;
    let bytes = this.sizeOf(from) - RECORD_HEADER;
    while (end < to && bytes + this.sizeOf(end) - RECORD_HEADER <= maxBytes) {
      bytes += this.sizeOf(end) - RECORD_HEADER;
      end++;
    }
    const start = this.positions[from - this.first];
    const stop = this.positionOf(end);
    const window = floorPage(start);
    const buffer = Buffer.alloc(ceilPage(stop) - window);
    await this.readRing(window, buffer);
    const out: LogRecord[] = [];
    for (let index = from; index < end; index++) {
      const at = this.positions[index - this.first] - window;
      const record = this.parse(buffer, at, this.positions[index - this.first]);
      if (record === undefined || record.index !== index || record.term !== this.terms[index - this.first]) {
        throw new FastblockError(ErrorCode.CORRUPT, `log record ${index} of PG ${this.host.pg} fails its checksum`, { pg: this.host.pg, index, blobId: this.blob.id });
      }
      out.push({ index, term: record.term, type: record.type, data: record.data });
    }
    return out;
  }

  truncateSuffix(fromIndex: number): Promise<void> {
    return this.serial(async () => {
      const from = Math.max(fromIndex, this.first);
      if (from > this.lastIndex) return;
      const keep = from - this.first;
      const newTail = this.positions[keep];
      this.positions.length = keep;
      this.terms.length = keep;
      this.crcs.length = keep;
      this.prevCrc = keep === 0 ? this.headPrevCrc : this.crcs[keep - 1];
      this.generation = (this.generation + 1) >>> 0;
      // The new tail page, with everything from the tail on zeroed: no stale record survives at the tail.
      const pageStart = floorPage(newTail);
      if (pageStart !== floorPage(this.tail)) await this.readRing(pageStart, this.tailPage);
      this.tailPage.fill(0, newTail - pageStart);
      this.tail = newTail;
      await Promise.all([this.writeRing(pageStart, this.tailPage), this.writeHeader()]);
    });
  }

  trimPrefix(toIndex: number): Promise<void> {
    return this.serial(async () => {
      if (toIndex <= this.first) return;
      if (toIndex > this.lastIndex) {
        this.head = this.tail;
        this.headPrevCrc = this.prevCrc;
        this.positions = [];
        this.terms = [];
        this.crcs = [];
      } else {
        const drop = toIndex - this.first;
        this.head = this.positions[drop];
        this.headPrevCrc = this.crcs[drop - 1];
        this.positions.splice(0, drop);
        this.terms.splice(0, drop);
        this.crcs.splice(0, drop);
      }
      this.first = toIndex;
      await this.writeHeader();
    });
  }

  /**
   * Called by the shard just before a device flush: the returned function, called once that flush
   * succeeded, marks the header written so far as durable (its trimmed space becomes reusable).
   */
  beforeFlush(): () => void {
    const head = this.writtenHead;
    return () => {
      if (head > this.durableHead) this.durableHead = head;
    };
  }

  /** Waits for queued operations; the log refuses new ones afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue.catch(() => undefined);
  }

  private serial(work: () => Promise<void>): Promise<void> {
    this.checkOpen();
    this.pending++;
    const run = this.queue.then(work);
    this.queue = run.then(this.settled, this.settled);
    return run;
  }

  /** One queued operation finished, whatever its outcome (its caller has the outcome). */
  private readonly settled = (): void => {
    this.pending--;
  };

  private checkOpen(): void {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, `log of PG ${this.host.pg} is closed`, { pg: this.host.pg });
  }

  private sizeOf(index: number): number {
    return this.positionOf(index + 1) - this.positions[index - this.first];
  }

  private positionOf(index: number): number {
    return index > this.lastIndex ? this.tail : this.positions[index - this.first];
  }

  private async appendNow(records: readonly LogRecord[]): Promise<void> {
    const total = this.checkRecords(records);
    await this.ensureSpace(total);
    await this.writeRecords(records, total);
  }

  /** Bytes the records take in the ring; throws unless they follow the log's last index. */
  private checkRecords(records: readonly LogRecord[]): number {
    let expected = this.lastIndex + 1;
    let total = 0;
    for (const r of records) {
      if (r.index !== expected || !Number.isSafeInteger(r.term) || r.term < 0 || !(r.type >= 0 && r.type <= 255)) {
        throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `log append out of order or malformed at index ${r.index}`, { pg: this.host.pg, index: r.index, expected, term: r.term, type: r.type });
      }
      expected++;
      total += RECORD_HEADER + r.data.length;
    }
    return total;
  }

  /**
   * Writes the records at the tail (the partial tail page rewritten, then the new pages: one
   * write) and, once it completed, takes them into the log. The caller made room for them.
   */
  private writeRecords(records: readonly LogRecord[], total: number): Promise<void> {
    const pageStart = floorPage(this.tail);
    const prefix = this.tail - pageStart;
    const length = ceilPage(prefix + total);
    const buffer = bufferPool.acquire(length);
    let at = prefix;
    let pos = this.tail;
    let prev = this.prevCrc;
    const positions = new Array<number>(records.length);
    const crcs = new Array<number>(records.length);
    let written: Promise<void>;
    try {
      buffer.set(this.tailPage.subarray(0, prefix), 0);
      const view = viewOf(buffer);
      for (let i = 0; i < records.length; i++) {
        const r = records[i];
        view.setUint32(at + 4, r.data.length, true);
        view.setUint32(at + 8, this.generation, true);
        view.setUint32(at + 12, prev, true);
        writeU64(view, at + 16, pos);
        writeU64(view, at + 24, r.index);
        writeU64(view, at + 32, r.term);
        view.setUint32(at + 40, r.type, true);
        view.setUint32(at + 44, 0, true);
        buffer.set(r.data, at + RECORD_HEADER);
        prev = crc32c(buffer.subarray(at + 4, at + RECORD_HEADER + r.data.length));
        view.setUint32(at, prev, true);
        positions[i] = pos;
        crcs[i] = prev;
        at += RECORD_HEADER + r.data.length;
        pos += RECORD_HEADER + r.data.length;
      }
      buffer.fill(0, at, length);
      written = this.writeRing(pageStart, buffer.subarray(0, length));
    } catch (err) {
      bufferPool.release(buffer);
      return Promise.reject(err);
    }
    return written.then(
      () => {
        for (let i = 0; i < records.length; i++) {
          this.positions.push(positions[i]);
          this.terms.push(records[i].term);
          this.crcs.push(crcs[i]);
        }
        this.tail = pos;
        this.prevCrc = prev;
        const lastPage = floorPage(pos) - pageStart;
        this.tailPage.set(buffer.subarray(lastPage, lastPage + P));
        bufferPool.release(buffer);
      },
      (err: unknown) => {
        bufferPool.release(buffer);
        throw err;
      },
    );
  }

  /** Room for `bytes` more at the tail without touching a page of durable live data. */
  private hasRoom(bytes: number): boolean {
    return ceilPage(this.tail + bytes) - floorPage(this.durableHead) <= this.capacity;
  }

  /** Makes that room: reuses space a durable trim freed (after a flush), or grows the ring. */
  private async ensureSpace(bytes: number): Promise<void> {
    if (this.hasRoom(bytes)) return;
    if (this.writtenHead > this.durableHead && ceilPage(this.tail + bytes) - floorPage(this.writtenHead) <= this.capacity) {
      // A trim already freed the room; it becomes reusable once its header is durable.
      await this.host.flush();
      if (this.hasRoom(bytes)) return;
    }
    await this.grow(bytes);
  }

  private async grow(bytes: number): Promise<void> {
    const cs = this.blob.sizeBytes / this.blob.clusterCount;
    const liveStart = floorPage(this.head);
    const live = ceilPage(this.tail) - liveStart;
    const wanted = Math.max(2 * this.capacity, this.capacity + live + bytes + 2 * P);
    const clusters = Math.max(this.blob.clusterCount, Math.ceil((P + wanted) / cs));
    const capacity = clusters * cs - P;
    // Live data lands just past the old ring (new clusters), away from anything the old header names.
    const base = liveStart - this.capacity;
    this.blob.resize(clusters);
    const chunk = Buffer.alloc(Math.min(COPY_CHUNK, live));
    for (let done = 0; done < live; done += chunk.length) {
      const n = Math.min(chunk.length, live - done);
      await this.readRing(liveStart + done, chunk.subarray(0, n));
      await this.writeRingWith(liveStart + done, chunk.subarray(0, n), base, capacity);
    }
    await this.host.flush();
    this.base = base;
    this.capacity = capacity;
    await this.writeHeader();
    await this.host.flush();
    this.durableHead = Math.max(this.durableHead, this.head);
  }

  private async writeHeader(): Promise<void> {
    const page = bufferPool.acquire(P);
    const head = this.head;
    try {
      encodeHeader({ generation: this.generation, headPrevCrc: this.headPrevCrc, head, firstIndex: this.first, base: this.base, capacity: this.capacity }, page);
      await this.blob.write(0, page);
      this.writtenHead = Math.max(this.writtenHead, head);
      if (this.writtenHead > this.durableHead) this.host.headerWritten(this);
    } finally {
      bufferPool.release(page);
    }
  }

  /** Ring I/O at logical position `pos` (page-aligned), split where the ring wraps. */
  private ringSegments(pos: number, length: number, base: number, capacity: number): { blobOffset: number; start: number; length: number }[] {
    assert(pos % P === 0 && length % P === 0 && length <= capacity, 'ring I/O is whole pages within the ring');
    const phys = (((pos - base) % capacity) + capacity) % capacity;
    if (phys + length <= capacity) return [{ blobOffset: P + phys, start: 0, length }];
    const first = capacity - phys;
    return [
      { blobOffset: P + phys, start: 0, length: first },
      { blobOffset: P, start: first, length: length - first },
    ];
  }

  private async readRing(pos: number, buffer: Uint8Array): Promise<void> {
    await Promise.all(this.ringSegments(pos, buffer.length, this.base, this.capacity).map((s) => this.blob.read(s.blobOffset, buffer.subarray(s.start, s.start + s.length))));
  }

  private writeRing(pos: number, buffer: Uint8Array): Promise<void> {
    return this.writeRingWith(pos, buffer, this.base, this.capacity);
  }

  private writeRingWith(pos: number, buffer: Uint8Array, base: number, capacity: number): Promise<void> {
    const segments = this.ringSegments(pos, buffer.length, base, capacity);
    const fresh = this.unallocatedClusters(segments);
    if (fresh !== undefined) return this.materialize(fresh).then(() => this.writeSegments(segments, buffer));
    return this.writeSegments(segments, buffer);
  }

  private writeSegments(segments: readonly { blobOffset: number; start: number; length: number }[], buffer: Uint8Array): Promise<void> {
    if (segments.length === 1) return this.blob.write(segments[0].blobOffset, buffer);
    return Promise.all(segments.map((s) => this.blob.write(s.blobOffset, buffer.subarray(s.start, s.start + s.length)))).then(() => undefined);
  }

  /** Blob clusters the segments touch that have no device cluster yet; undefined when none. */
  private unallocatedClusters(segments: readonly { blobOffset: number; length: number }[]): number[] | undefined {
    const cs = this.blob.sizeBytes / this.blob.clusterCount;
    let fresh: number[] | undefined;
    for (const s of segments) {
      for (let i = Math.floor(s.blobOffset / cs); i <= Math.floor((s.blobOffset + s.length - 1) / cs); i++) {
        if (this.blob.clusterAt(i) === 0) (fresh ??= []).push(i);
      }
    }
    return fresh;
  }

  /**
   * A ring cluster is written whole with zeroes before its first record (the log's operations run
   * one at a time, so no write of the log races it): see Blob.materialize.
   */
  private async materialize(clusters: readonly number[]): Promise<void> {
    for (const i of clusters) await this.blob.materialize(i, i + 1);
  }

  /** The record at `at` in `buffer` if it is intact and at logical position `pos`. */
  private parse(buffer: Uint8Array, at: number, pos: number): { index: number; term: number; type: number; data: Uint8Array; generation: number; prevCrc: number; crc: number; size: number } | undefined {
    if (at + RECORD_HEADER > buffer.length) return undefined;
    const view = viewOf(buffer);
    const length = view.getUint32(at + 4, true);
    if (at + RECORD_HEADER + length > buffer.length) return undefined;
    if (readU64(view, at + 16) !== pos) return undefined;
    const crc = view.getUint32(at, true);
    if (crc32c(buffer.subarray(at + 4, at + RECORD_HEADER + length)) !== crc) return undefined;
    return {
      index: readU64(view, at + 24),
      term: readU64(view, at + 32),
      type: view.getUint32(at + 40, true),
      data: buffer.subarray(at + RECORD_HEADER, at + RECORD_HEADER + length),
      generation: view.getUint32(at + 8, true),
      prevCrc: view.getUint32(at + 12, true),
      crc,
      size: RECORD_HEADER + length,
    };
  }

  /** Finds the records that chain from the head (see the file comment for the rules). */
  private async scan(): Promise<void> {
    let pos = this.head;
    let index = this.first;
    let prev = this.headPrevCrc;
    let generation = 0;
    let maxGeneration = this.generation;
    let window = Buffer.alloc(0);
    let windowStart = 0;
    for (;;) {
      if (pos - this.head + RECORD_HEADER > this.capacity) break;
      let at = pos - windowStart;
      if (at < 0 || at + RECORD_HEADER > window.length || at + RECORD_HEADER + viewOf(window).getUint32(at + 4, true) > window.length) {
        // Read a window from this record on; a record longer than the window gets a window of its own.
        windowStart = floorPage(pos);
        let size = Math.min(SCAN_WINDOW, this.capacity);
        const peek = Buffer.alloc(P * 2 <= this.capacity ? P * 2 : P);
        await this.readRing(windowStart, peek);
        const inPeek = pos - windowStart;
        if (inPeek + 8 <= peek.length) size = Math.max(size, ceilPage(inPeek + RECORD_HEADER + viewOf(peek).getUint32(inPeek + 4, true)));
        if (size > this.capacity) break;
        window = Buffer.alloc(size);
        await this.readRing(windowStart, window);
        at = pos - windowStart;
      }
      const record = this.parse(window, at, pos);
      if (record === undefined || record.index !== index || record.prevCrc !== prev || record.generation < generation) break;
      if (pos + record.size - this.head > this.capacity) break;
      this.positions.push(pos);
      this.terms.push(record.term);
      this.crcs.push(record.crc);
      generation = record.generation;
      maxGeneration = Math.max(maxGeneration, generation);
      prev = record.crc;
      pos += record.size;
      index++;
    }
    this.tail = pos;
    this.prevCrc = prev;
    // Later truncations must outrank every generation that may still be on disk past the tail.
    this.generation = (maxGeneration + 1) >>> 0;
    const pageStart = floorPage(pos);
    if (pos - pageStart > 0) await this.readRing(pageStart, this.tailPage);
    this.tailPage.fill(0, pos - pageStart);
  }
}
