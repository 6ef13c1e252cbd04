/**
 * A blob: a resizable run of clusters, allocated on first write, plus xattrs. Reads and writes are
 * in whole pages at page-aligned offsets; byte-granular access is the layers above (object_store
 * does read-modify-write). Metadata changes live in memory until the blobstore syncs them.
 */
import { FastblockError, ErrorCode, assert } from '../../../kernel/errors.js';
import { allocAligned } from '../bdev/aligned-memory.js';
import { type Bdev, type Buffers, type WriteCaching, asList, totalLength } from '../bdev/bdev.js';
import { type BlobMd, checkXattr } from './md-page.js';
import { PAGE_SIZE } from './layout.js';

/** What a blob needs from its blobstore. */
export interface BlobHost {
  readonly bdev: Bdev;
  readonly clusterSize: number;
  /** Clusters for a write, all or none: throws NO_SPACE. */
  allocateClusters(count: number, near: number): number[];
  /** Clusters no longer in this blob: reusable once the md that drops them is durable. */
  releaseClusters(clusters: readonly number[]): void;
  /**
   * Called before an md change that grows the md by about `growthBytes` (0: no growth): marks the
   * blob dirty, and throws NO_SPACE, before anything changed, when the md would not fit.
   */
  mdChanged(blob: Blob, growthBytes: number): void;
  /** Cluster initializations a sync must wait for (they must precede the md naming the cluster). */
  track(work: Promise<void>): void;
  checkUsable(blob: Blob): void;
}

export interface Extent {
  readonly offset: number;
  readonly length: number;
}

/** The slices of a scatter list covering [start, start + length). */
export function sliceBuffers(list: readonly Uint8Array[], start: number, length: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = start;
  for (const b of list) {
    if (length === 0) break;
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    const n = Math.min(b.length - skip, length);
    out.push(b.subarray(skip, skip + n));
    length -= n;
    skip = 0;
  }
  return out;
}

/** Cluster writes materialize() keeps in flight. */
const MATERIALIZE_DEPTH = 8;
const zeroClusters = new Map<number, Buffer>();

/** One page-aligned cluster of zeroes per cluster size, shared (only ever written from). */
function zeroCluster(clusterSize: number): Buffer {
  let zeroes = zeroClusters.get(clusterSize);
  if (zeroes === undefined) {
    zeroes = allocAligned(clusterSize).fill(0);
    zeroClusters.set(clusterSize, zeroes);
  }
  return zeroes;
}

export class Blob {
  private map: Uint32Array;
  private count: number;
  readonly xattrs = new Map<string, Uint8Array>();
  /** Cluster index -> zeroing in flight; I/O to that cluster waits for it. */
  private readonly initializing = new Map<number, Promise<void>>();

  /** Bumped on every md change; the blobstore syncs when it differs from syncedVersion. */
  version = 0;
  syncedVersion = -1;
  /** Generation of the md chain on disk. */
  generation = 0;
  /** Non-head md pages of the chain on disk. */
  chainPages: number[] = [];
  deleted = false;

  constructor(
    readonly id: number,
    private readonly host: BlobHost,
    md?: BlobMd,
  ) {
    this.count = md?.clusterCount ?? 0;
    this.map = new Uint32Array(Math.max(4, this.count));
    if (md !== undefined) {
      for (let i = 0; i < this.count; i++) this.map[i] = md.clusters[i];
      for (const [k, v] of md.xattrs) this.xattrs.set(k, v);
    }
  }

  get clusterCount(): number {
    return this.count;
  }

  get sizeBytes(): number {
    return this.count * this.host.clusterSize;
  }

  /** Device cluster of blob cluster `index`; 0 when unallocated. */
  clusterAt(index: number): number {
    return this.map[index];
  }

  allocatedClusters(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) if (this.map[i] !== 0) n++;
    return n;
  }

  /** A snapshot of the md, for encoding. */
  md(): BlobMd {
    return { clusters: this.map.slice(0, this.count), clusterCount: this.count, xattrs: new Map(this.xattrs) };
  }

  getXattr(name: string): Uint8Array | undefined {
    return this.xattrs.get(name);
  }

  setXattr(name: string, value: Uint8Array): void {
    this.host.checkUsable(this);
    checkXattr(name, value);
    const old = this.xattrs.get(name);
    if (old !== undefined && old.length === value.length && old.every((b, i) => b === value[i])) return;
    this.host.mdChanged(this, value.length + name.length + 8 - (old === undefined ? 0 : old.length + name.length + 8));
    this.xattrs.set(name, value.slice());
    this.version++;
  }

  removeXattr(name: string): void {
    this.host.checkUsable(this);
    if (!this.xattrs.has(name)) return;
    this.host.mdChanged(this, 0);
    this.xattrs.delete(name);
    this.version++;
  }

  /** Sets the size in clusters. Growing is thin (no allocation); shrinking releases clusters. */
  resize(clusters: number): void {
    this.host.checkUsable(this);
    if (!Number.isInteger(clusters) || clusters < 0 || clusters > 0xfffffffe) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'blob size out of range', { blobId: this.id, clusters });
    }
    if (clusters === this.count) return;
    if (clusters > this.count) {
      this.host.mdChanged(this, 8 * (clusters - this.count));
      if (clusters > this.map.length) {
        const grown = new Uint32Array(Math.max(clusters, this.map.length * 2));
        grown.set(this.map.subarray(0, this.count));
        this.map = grown;
      }
    } else {
      const released: number[] = [];
      for (let i = clusters; i < this.count; i++) if (this.map[i] !== 0) released.push(this.map[i]);
      this.map.fill(0, clusters, this.count);
      this.host.releaseClusters(released);
    }
    if (clusters < this.count) this.host.mdChanged(this, 0);
    this.count = clusters;
    this.version++;
  }

  /**
   * Allocates every cluster of the blob now, so that no later write allocates: a blob that must
   * not run out of space once created (the shard's journal) holds all of it up front. Throws
   * NO_SPACE, allocating nothing, when the device cannot hold it. `zero` false leaves the clusters'
   * old bytes in place (for a reader that recognizes only what it wrote, as the journal does).
   */
  reserve(zero = true): void {
    this.host.checkUsable(this);
    let missing = 0;
    for (let i = 0; i < this.count; i++) if (this.map[i] === 0) missing++;
    if (missing === 0) return;
    this.host.mdChanged(this, 8 * missing);
    const clusters = this.host.allocateClusters(missing, 0);
    const cs = this.host.clusterSize;
    let k = 0;
    const fresh: number[] = [];
    for (let i = 0; i < this.count; i++) {
      if (this.map[i] !== 0) continue;
      this.map[i] = clusters[k++];
      fresh.push(i);
    }
    this.version++;
    if (!zero) return;
    // One zeroing per run of adjacent device clusters (allocation mostly hands out runs).
    for (let r = 0; r < fresh.length; ) {
      let end = r + 1;
      while (end < fresh.length && this.map[fresh[end]] === this.map[fresh[end - 1]] + 1) end++;
      const run = fresh.slice(r, end);
      this.initializeRun(run, this.host.bdev.writeZeroes(this.map[run[0]] * cs, run.length * cs));
      r = end;
    }
  }

  /**
   * Whether a write of [offset, offset + length) would go straight to the device: every cluster
   * it touches allocated and initialized, the blob usable. Such a write allocates nothing, so it
   * can fail only with the device.
   */
  holdsSpace(offset: number, length: number): boolean {
    if (this.deleted || this.initializing.size !== 0 || length <= 0 || offset < 0 || offset + length > this.sizeBytes) return false;
    const cs = this.host.clusterSize;
    const last = Math.floor((offset + length - 1) / cs);
    for (let i = Math.floor(offset / cs); i <= last; i++) if (this.map[i] === 0) return false;
    return true;
  }

  /**
   * Writes zeroes over clusters [from, to), as data, allocating them: every block of those
   * clusters is then written data on the device. For a ring rewritten for ever (a raft log) on a
   * device that is a file: a block the filesystem holds as a hole or as an unwritten extent (what
   * writeZeroes leaves) makes the first write to it allocate or convert, so the next fdatasync
   * commits the filesystem's journal, and io_uring cannot issue that write inline (it goes to a
   * worker thread). Once written, every later write of the ring is a plain overwrite.
   */
  async materialize(from: number, to: number): Promise<void> {
    assert(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && to <= this.count, 'materialize within the blob');
    const cs = this.host.clusterSize;
    const zeroes = zeroCluster(cs);
    const inFlight: Promise<void>[] = [];
    for (let i = from; i < to; i++) {
      inFlight.push(this.write(i * cs, zeroes));
      if (inFlight.length === MATERIALIZE_DEPTH) await Promise.all(inFlight.splice(0));
    }
    await Promise.all(inFlight);
  }

  /**
   * `cache`: what the write does to the device's read cache, if it has one (see WriteCaching).
   * `durable`: the bytes are on the medium when it resolves (Bdev.write). Only the bytes: clusters
   * the write allocates are named by md that the next flush makes durable, so a durable write
   * belongs in clusters allocated and flushed before (a reserved ring).
   */
  write(offset: number, buffers: Buffers, cache: WriteCaching = 'none', durable = false): Promise<void> {
    // The common case — allocated clusters, one device range — goes straight to the device.
    try {
      const length = totalLength(buffers);
      this.checkIo(offset, length, 'write');
      const cs = this.host.clusterSize;
      const first = Math.floor(offset / cs);
      const last = Math.floor((offset + length - 1) / cs);
      this.allocateFor(offset, length, first, last);
      if (this.initializing.size === 0) {
        if (first === last) return this.host.bdev.write(this.map[first] * cs + (offset - first * cs), buffers, cache, durable);
        const segments = this.segments(offset, length);
        if (segments.length === 1) return this.host.bdev.write(segments[0].device, buffers, cache, durable);
      }
      return this.writeSegments(offset, length, first, last, buffers, cache, durable);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async writeSegments(offset: number, length: number, first: number, last: number, buffers: Buffers, cache: WriteCaching, durable: boolean): Promise<void> {
    if (this.initializing.size !== 0) await this.initialized(first, last);
    this.host.checkUsable(this);
    const list = asList(buffers);
    const segments = this.segments(offset, length);
    if (segments.length === 1) return this.host.bdev.write(segments[0].device, buffers, cache, durable);
    await Promise.all(segments.map((s) => this.host.bdev.write(s.device, sliceBuffers(list, s.blobOffset - offset, s.length), cache, durable)));
  }

  /** Fills `buffers` from offset; unallocated ranges read as zeroes. `cache`: object data, worth caching. */
  read(offset: number, buffers: Buffers, cache = false): Promise<void> {
    try {
      const length = totalLength(buffers);
      this.checkIo(offset, length, 'read');
      if (this.initializing.size === 0) {
        const cs = this.host.clusterSize;
        const index = Math.floor(offset / cs);
        const cluster = this.map[index];
        if (cluster !== 0 && offset + length <= (index + 1) * cs) return this.host.bdev.read(cluster * cs + (offset - index * cs), buffers, cache);
        const segments = this.segments(offset, length);
        if (segments.length === 1 && segments[0].device >= 0) return this.host.bdev.read(segments[0].device, buffers, cache);
      }
      return this.readSegments(offset, length, buffers, cache);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async readSegments(offset: number, length: number, buffers: Buffers, cache: boolean): Promise<void> {
    if (this.initializing.size !== 0) await this.initialized(Math.floor(offset / this.host.clusterSize), Math.floor((offset + length - 1) / this.host.clusterSize));
    const list = asList(buffers);
    const segments = this.segments(offset, length);
    if (segments.length === 1 && segments[0].device >= 0) return this.host.bdev.read(segments[0].device, buffers, cache);
    await Promise.all(
      segments.map((s) => {
        const slices = sliceBuffers(list, s.blobOffset - offset, s.length);
        if (s.device >= 0) return this.host.bdev.read(s.device, slices, cache);
        for (const slice of slices) slice.fill(0);
        return undefined;
      }),
    );
  }

  /**
   * The range reads as zeroes afterwards: whole clusters are released, partial ones zeroed on the
   * device. Page-aligned.
   */
  async unmap(offset: number, length: number): Promise<void> {
    this.checkIo(offset, length, 'unmap');
    const cs = this.host.clusterSize;
    const released: number[] = [];
    const zeroes: Promise<void>[] = [];
    if (this.initializing.size !== 0) await this.initialized(Math.floor(offset / cs), Math.floor((offset + length - 1) / cs));
    for (let at = offset; at < offset + length; ) {
      const index = Math.floor(at / cs);
      const end = Math.min((index + 1) * cs, offset + length);
      const cluster = this.map[index];
      if (cluster !== 0) {
        if (at === index * cs && end === (index + 1) * cs) {
          released.push(cluster);
          this.map[index] = 0;
        } else {
          zeroes.push(this.host.bdev.writeZeroes(cluster * cs + (at - index * cs), end - at));
        }
      }
      at = end;
    }
    if (released.length !== 0) {
      this.host.mdChanged(this, 0);
      this.host.releaseClusters(released);
      this.version++;
    }
    await Promise.all(zeroes);
  }

  /** Allocated byte ranges, merged, in blob offsets. */
  extents(): Extent[] {
    const cs = this.host.clusterSize;
    const out: Extent[] = [];
    for (let i = 0; i < this.count; i++) {
      if (this.map[i] === 0) continue;
      const previous = out[out.length - 1];
      if (previous !== undefined && previous.offset + previous.length === i * cs) out[out.length - 1] = { offset: previous.offset, length: previous.length + cs };
      else out.push({ offset: i * cs, length: cs });
    }
    return out;
  }

  private checkIo(offset: number, length: number, op: string): void {
    this.host.checkUsable(this);
    if (offset % PAGE_SIZE !== 0 || length % PAGE_SIZE !== 0 || length <= 0 || offset < 0) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `blob ${op} must be whole pages`, { blobId: this.id, offset, length });
    }
    if (offset + length > this.sizeBytes) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `blob ${op} past the blob's end`, { blobId: this.id, offset, length, sizeBytes: this.sizeBytes });
    }
  }

  /** Thin provisioning: clusters the write touches get allocated, all before any I/O. */
  private allocateFor(offset: number, length: number, first: number, last: number): void {
    let missing = 0;
    for (let i = first; i <= last; i++) if (this.map[i] === 0) missing++;
    if (missing === 0) return;
    const cs = this.host.clusterSize;
    this.host.mdChanged(this, 8 * missing);
    const near = first > 0 && this.map[first - 1] !== 0 ? this.map[first - 1] + 1 : 0;
    const clusters = this.host.allocateClusters(missing, near);
    let k = 0;
    for (let i = first; i <= last; i++) {
      if (this.map[i] !== 0) continue;
      const cluster = clusters[k++];
      this.map[i] = cluster;
      const covered = offset <= i * cs && offset + length >= (i + 1) * cs;
      if (!covered) this.initialize(i, cluster);
    }
    this.version++;
  }

  /** A new cluster may hold another blob's old bytes: zero it before anything reads or names it. */
  private initialize(index: number, cluster: number): void {
    const cs = this.host.clusterSize;
    this.initializeRun([index], this.host.bdev.writeZeroes(cluster * cs, cs));
  }

  /** Blob clusters `indexes` are being zeroed by `zeroing`; I/O to them waits for it. */
  private initializeRun(indexes: readonly number[], zeroing: Promise<void>): void {
    const clusters = indexes.map((i) => this.map[i]);
    const work = zeroing.then(
      () => {
        for (const index of indexes) this.initializing.delete(index);
      },
      (err: unknown) => {
        // Not zeroed: take the clusters back out of the map so no read or sync trusts them.
        for (const index of indexes) this.initializing.delete(index);
        const still = indexes.filter((index, k) => this.map[index] === clusters[k]);
        if (still.length !== 0) {
          this.host.mdChanged(this, 0);
          const released = still.map((index) => this.map[index]);
          for (const index of still) this.map[index] = 0;
          this.version++;
          this.host.releaseClusters(released);
        }
        throw err;
      },
    );
    for (const index of indexes) this.initializing.set(index, work);
    this.host.track(work);
  }

  private async initialized(first: number, last: number): Promise<void> {
    const waits: Promise<void>[] = [];
    for (let i = first; i <= last; i++) {
      const w = this.initializing.get(i);
      if (w !== undefined) waits.push(w);
    }
    if (waits.length !== 0) await Promise.all(waits);
  }

  /** Device ranges of [offset, offset + length), physically adjacent clusters merged; device -1: hole. */
  private segments(offset: number, length: number): { device: number; blobOffset: number; length: number }[] {
    const cs = this.host.clusterSize;
    const out: { device: number; blobOffset: number; length: number }[] = [];
    for (let at = offset; at < offset + length; ) {
      const index = Math.floor(at / cs);
      const end = Math.min((index + 1) * cs, offset + length);
      const cluster = this.map[index];
      const device = cluster === 0 ? -1 : cluster * cs + (at - index * cs);
      const previous = out[out.length - 1];
      if (previous !== undefined && ((device < 0 && previous.device < 0) || (device >= 0 && previous.device >= 0 && previous.device + previous.length === device))) {
        previous.length += end - at;
      } else {
        out.push({ device, blobOffset: at, length: end - at });
      }
      at = end;
    }
    assert(out.length > 0);
    return out;
  }
}
