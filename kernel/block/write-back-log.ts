/**
 * The write-back log: the file that makes a write-back cache's acknowledged writes outlive the
 * process that acknowledged them (kill -9, a crash, an upgrade). It lives on tmpfs by default, as
 * a disk's volatile cache lives in its DRAM: a host reboot loses what the guest never flushed,
 * which is what a guest that was offered a volatile cache (VIRTIO_BLK_F_FLUSH) expects.
 *
 * Layout: a header page, then a ring of `capacity` bytes holding records back to back at
 * increasing logical positions (physical = HEADER_BYTES + position mod capacity). A record never
 * wraps: one that does not fit before the end of the ring is preceded by a PAD record (or, when
 * fewer than RECORD_HEADER bytes are left, by nothing) and starts the next lap.
 *
 *   header page                          record (RECORD_HEADER bytes, then data)
 *   0  'FBWBLOG1'                        0  u32 CRC-32 of bytes 4.. and the data
 *   8  u32 CRC-32 of bytes 12..512       4  u8 kind (WRITE, DISCARD, ZEROES, PAD), 3 bytes 0
 *   12 u32 version                       8  u64 sequence number (one more than the record before)
 *   16 u64 ring capacity                 16 u64 logical position (where it was written)
 *   24 u64 tail position                 24 u64 volume offset
 *   32 u64 tail sequence number          32 u32 length in the volume
 *   40 u16 volume name length, name      36 u32 data bytes that follow (WRITE: length; PAD: skipped)
 *
 * The tail in the header is the first record that may not be in the volume yet. Replay reads
 * from it while each record's CRC, sequence number and position agree: a record torn by a crash
 * (never acknowledged) or one left from an earlier lap ends the log. Records before the tail may
 * be replayed again (the header lags the write-back): replaying them in order ends in the same
 * state, as long as nothing reached the volume around the log (see WriteBackVolume's barriers).
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { crc32 } from '../rpc/checksum.js';
import { kernelAddon } from '../native.js';
import { assert, ErrorCode, FastblockError } from '../errors.js';

export const HEADER_BYTES = 4096;
export const RECORD_HEADER = 40;
const MAGIC = 'FBWBLOG1';
const VERSION = 1;
const HEADER_CHECKED = 512;
const MAX_NAME = HEADER_CHECKED - 42;

export const RecordKind = { WRITE: 1, DISCARD: 2, ZEROES: 3, PAD: 4 } as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

/** A record found by replay; `data` views the ring copy in memory. */
export interface LoggedRecord {
  readonly kind: RecordKind;
  readonly seq: number;
  readonly position: number;
  readonly offset: number;
  readonly length: number;
  readonly data: Uint8Array | undefined;
}

export interface LogState {
  readonly capacity: number;
  /** The header's tail: ring space from here on is not free. */
  readonly tail: number;
  /** The records from the header's tail to the first one that does not check. */
  readonly records: LoggedRecord[];
  /** Where the next record goes, and its sequence number. */
  readonly head: number;
  readonly nextSeq: number;
}

/**
 * The open log file and its ring in memory. With the kernel addon the ring is a shared mapping of
 * the file: a record is built in the file's own pages, and that is its write (no syscall, no second
 * copy, no second 64 MiB). Without it the ring is a copy in memory and each record is written to the
 * file with one pwrite. Either way the data the write-back sends is a view of the ring.
 */
export class WriteBackLog {
  /** The ring's bytes, as in the file. */
  readonly ring: Buffer;
  private readonly header = Buffer.alloc(HEADER_BYTES);

  /** The ring is the file's pages: records need no write of their own. */
  readonly mapped: boolean;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly capacity: number,
    readonly volumeName: string,
    map: boolean,
  ) {
    const mapping = map ? kernelAddon?.mmapShared?.(fd, HEADER_BYTES, capacity) : undefined;
    this.mapped = typeof mapping === 'object';
    this.ring = typeof mapping === 'object' ? Buffer.from(mapping) : Buffer.alloc(capacity);
  }

  /**
   * Opens the log of `volumeName` at `path`: an existing one is read back (its own capacity wins
   * over `capacity` until it is empty again); a missing one is created empty.
   */
  static open(path: string, volumeName: string, capacity: number, options: { map?: boolean } = {}): { log: WriteBackLog; state: LogState } {
    assert(Number.isSafeInteger(capacity) && capacity >= 1 << 20, 'write-back log capacity must be at least 1 MiB');
    if (Buffer.byteLength(volumeName) > MAX_NAME) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'volume name too long for a write-back log', { volumeName });
    const fresh = !existsSync(path);
    if (fresh) WriteBackLog.create(path, volumeName, capacity);
    const rw = openSync(path, 'r+');
    try {
      const size = fstatSync(rw).size;
      const header = Buffer.alloc(HEADER_BYTES);
      if (readSync(rw, header, 0, HEADER_BYTES, 0) !== HEADER_BYTES) throw corrupt(path, 'header shorter than a page');
      if (header.toString('latin1', 0, 8) !== MAGIC) throw corrupt(path, 'not a write-back log (bad magic)');
      if (header.readUInt32LE(8) !== crc32(header.subarray(12, HEADER_CHECKED))) throw corrupt(path, 'header checksum mismatch');
      if (header.readUInt32LE(12) !== VERSION) throw corrupt(path, `version ${header.readUInt32LE(12)} (this build reads ${VERSION})`);
      const fileCapacity = Number(header.readBigUInt64LE(16));
      const tail = Number(header.readBigUInt64LE(24));
      const tailSeq = Number(header.readBigUInt64LE(32));
      const name = header.toString('utf8', 42, 42 + header.readUInt16LE(40));
      if (name !== volumeName) {
        throw new FastblockError(ErrorCode.ALREADY_EXISTS, `${path} is the write-back log of ${name}, not of ${volumeName}`, { path, name, volumeName });
      }
      if (!Number.isSafeInteger(fileCapacity) || fileCapacity < 1 << 20 || size < HEADER_BYTES + fileCapacity) throw corrupt(path, 'ring size does not match the file');
      const log = new WriteBackLog(path, rw, fileCapacity, volumeName, options.map ?? true);
      // Made just now: nothing to read back (reading 64 MiB of zeroes cost a 100-400 ms stall).
      if (fresh) return { log, state: { capacity: fileCapacity, tail: 0, records: [], head: 0, nextSeq: 1 } };
      if (!log.mapped && readSync(rw, log.ring, 0, fileCapacity, HEADER_BYTES) !== fileCapacity) throw corrupt(path, 'short read of the ring');
      const state = log.scan(tail, tailSeq);
      return { log, state };
    } catch (err) {
      closeSync(rw);
      throw err;
    }
  }

  /**
   * Makes an empty log whole under another name, then renames it into place: a process killed
   * meanwhile leaves no half-made log at `path`. The ring is written out (zeroes), so that tmpfs
   * holds its pages now: a full tmpfs fails this open, never an append.
   */
  private static create(path: string, volumeName: string, capacity: number): void {
    const making = `${path}.new`;
    const fd = openSync(making, 'w');
    try {
      const log = new WriteBackLog(making, fd, capacity, volumeName, false);
      log.writeHeader(0, 1);
      const zeroes = Buffer.alloc(Math.min(capacity, 8 << 20));
      for (let at = 0; at < capacity; at += zeroes.length) {
        const bytes = Math.min(zeroes.length, capacity - at);
        if (writeSync(fd, zeroes, 0, bytes, HEADER_BYTES + at) !== bytes) throw new FastblockError(ErrorCode.IO_ERROR, `short write to ${making}`, { path: making });
      }
    } catch (err) {
      closeSync(fd);
      rmSync(making, { force: true });
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC') throw new FastblockError(ErrorCode.NO_SPACE, `no room for a ${capacity}-byte write-back log at ${path}`, { path, capacity });
      throw err;
    }
    closeSync(fd);
    renameSync(making, path);
  }

  /** Bytes a record of `dataBytes` takes at `position`, with the padding before it if it must start a new lap. */
  footprint(position: number, dataBytes: number): number {
    const size = RECORD_HEADER + dataBytes;
    const left = this.capacity - (position % this.capacity);
    return size <= left ? size : left + size;
  }

  /**
   * Writes a record at `position` (padding first when it does not fit before the end of the ring)
   * and returns where its data is in the ring, the position after it and the record's sequence
   * number (`seq`, or one more after a PAD). The caller checked the space with footprint(). `data`
   * is gathered into the ring: the only copy of the bytes.
   */
  append(position: number, seq: number, kind: RecordKind, offset: number, length: number, data: readonly Uint8Array[] | undefined): { dataAt: number; next: number; seq: number } {
    const dataBytes = kind === RecordKind.WRITE ? length : 0;
    let at = position;
    const left = this.capacity - (at % this.capacity);
    if (RECORD_HEADER + dataBytes > left) {
      if (left >= RECORD_HEADER) this.put(at, seq, RecordKind.PAD, 0, 0, left - RECORD_HEADER, undefined);
      at += left;
      // A PAD takes the sequence number: replay checks it like any other record.
      if (left >= RECORD_HEADER) seq++;
    }
    const phys = this.put(at, seq, kind, offset, length, dataBytes, data);
    return { dataAt: phys + RECORD_HEADER, next: at + RECORD_HEADER + dataBytes, seq };
  }

  private put(position: number, seq: number, kind: RecordKind, offset: number, length: number, dataBytes: number, data: readonly Uint8Array[] | undefined): number {
    const ring = this.ring;
    const phys = position % this.capacity;
    assert(phys + RECORD_HEADER + dataBytes <= this.capacity, 'a record never wraps');
    ring.writeUInt32LE(kind, phys + 4);
    writeU64(ring, phys + 8, seq);
    writeU64(ring, phys + 16, position);
    writeU64(ring, phys + 24, offset);
    ring.writeUInt32LE(length, phys + 32);
    ring.writeUInt32LE(dataBytes, phys + 36);
    let written = 0;
    if (data !== undefined) {
      for (const part of data) {
        ring.set(part, phys + RECORD_HEADER + written);
        written += part.byteLength;
      }
      assert(written === dataBytes, 'record data matches its length');
    }
    // A PAD's CRC covers only its header: the bytes it skips are whatever was there.
    const checked = kind === RecordKind.PAD ? RECORD_HEADER : RECORD_HEADER + dataBytes;
    ring.writeUInt32LE(crc32(ring.subarray(phys + 4, phys + checked)), phys);
    if (this.mapped) return phys;
    const bytes = kind === RecordKind.PAD ? RECORD_HEADER : RECORD_HEADER + dataBytes;
    let done: number;
    try {
      done = writeSync(this.fd, ring, phys, bytes, HEADER_BYTES + phys);
    } catch (err) {
      throw new FastblockError(ErrorCode.IO_ERROR, `write to the write-back log ${this.path} failed: ${(err as Error).message}`, { path: this.path, position });
    }
    if (done !== bytes) throw new FastblockError(ErrorCode.IO_ERROR, `short write to ${this.path}`, { path: this.path, position });
    return phys;
  }

  /** Makes `tail` (position and sequence number) what replay starts from. */
  writeHeader(tail: number, tailSeq: number): void {
    const h = this.header;
    h.fill(0, 0, HEADER_CHECKED);
    h.write(MAGIC, 0, 'latin1');
    h.writeUInt32LE(VERSION, 12);
    writeU64(h, 16, this.capacity);
    writeU64(h, 24, tail);
    writeU64(h, 32, tailSeq);
    const nameBytes = h.write(this.volumeName, 42, 'utf8');
    h.writeUInt16LE(nameBytes, 40);
    h.writeUInt32LE(crc32(h.subarray(12, HEADER_CHECKED)), 8);
    if (writeSync(this.fd, h, 0, HEADER_CHECKED, 0) !== HEADER_CHECKED) throw new FastblockError(ErrorCode.IO_ERROR, `short write to ${this.path}`, { path: this.path });
  }

  close(): void {
    closeSync(this.fd);
  }

  private scan(tail: number, tailSeq: number): LogState {
    const records: LoggedRecord[] = [];
    const ring = this.ring;
    let at = tail;
    let seq = tailSeq;
    for (;;) {
      let phys = at % this.capacity;
      if (this.capacity - phys < RECORD_HEADER) {
        at += this.capacity - phys;
        phys = 0;
      }
      const kind = ring.readUInt32LE(phys + 4);
      const dataBytes = ring.readUInt32LE(phys + 36);
      if (kind < RecordKind.WRITE || kind > RecordKind.PAD) break;
      if (phys + RECORD_HEADER + dataBytes > this.capacity) break;
      if (readU64(ring, phys + 8) !== seq || readU64(ring, phys + 16) !== at) break;
      const checked = kind === RecordKind.PAD ? RECORD_HEADER : RECORD_HEADER + dataBytes;
      if (ring.readUInt32LE(phys) !== crc32(ring.subarray(phys + 4, phys + checked))) break;
      const length = ring.readUInt32LE(phys + 32);
      if (kind === RecordKind.WRITE && dataBytes !== length) break;
      if (kind !== RecordKind.PAD) {
        const offset = readU64(ring, phys + 24);
        const data = kind === RecordKind.WRITE ? ring.subarray(phys + RECORD_HEADER, phys + RECORD_HEADER + dataBytes) : undefined;
        records.push({ kind: kind as RecordKind, seq, position: at, offset, length, data });
      }
      at += RECORD_HEADER + dataBytes;
      seq++;
    }
    return { capacity: this.capacity, tail, records, head: at, nextSeq: seq };
  }
}

/** A safe integer as a little-endian u64, without a BigInt per field (this runs per write). */
function writeU64(buffer: Buffer, at: number, value: number): void {
  buffer.writeUInt32LE(value % 0x1_0000_0000, at);
  buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), at + 4);
}

function readU64(buffer: Buffer, at: number): number {
  return buffer.readUInt32LE(at) + buffer.readUInt32LE(at + 4) * 0x1_0000_0000;
}

function corrupt(path: string, reason: string): FastblockError {
  return new FastblockError(ErrorCode.CORRUPT, `write-back log ${path}: ${reason}`, { path });
}
