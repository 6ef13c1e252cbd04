/**
 * An in-process BlockVolume held in memory: the block target frontends are developed and tested
 * against until the client library serves real images. Sparse (4 KiB pages allocated on write),
 * so a 1 GiB volume costs only what is written. Not durable: for tests only.
 */
import type { BlockVolume, BlockVolumeProvider, BlockWriteOptions } from '../../kernel/contracts/block.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

const PAGE = 4096;

export class MemoryVolume implements BlockVolume {
  readonly blockSize = PAGE;
  private closed = false;
  /** Counters tests can assert on. */
  readonly stats = { reads: 0, writes: 0, flushes: 0, discards: 0, writeZeroes: 0, fuaWrites: 0 };

  /**
   * `pages` and `extent` are shared between the handles of one volume, so each opener can close its
   * own and a resize reaches every handle (as an image resize reaches every open image).
   */
  constructor(
    readonly name: string,
    size: number,
    private readonly pages = new Map<number, Uint8Array>(),
    private readonly extent = { size },
  ) {
    MemoryVolume.checkSize(name, size);
  }

  private static checkSize(name: string, size: number): void {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE !== 0) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `volume size must be a positive multiple of ${PAGE}`, { name, size });
    }
  }

  get size(): number {
    return this.extent.size;
  }

  /** Grows or shrinks the volume for every handle; a shrink drops the data past the new end. */
  resize(size: number): void {
    MemoryVolume.checkSize(this.name, size);
    for (const pageNo of this.pages.keys()) if (pageNo * PAGE >= size) this.pages.delete(pageNo);
    this.extent.size = size;
  }

  private check(offset: number, length: number): void {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, `volume ${this.name} is closed`, { name: this.name });
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `range [${offset}, +${length}) outside volume ${this.name} of ${this.size} bytes`, {
        name: this.name,
        offset,
        length,
        size: this.size,
      });
    }
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    this.check(offset, length);
    this.stats.reads++;
    const out = into ?? new Uint8Array(length);
    if (out.length < length) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'read buffer too small', { need: length, have: out.length });
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const pageNo = Math.floor(pos / PAGE);
      const inPage = pos % PAGE;
      const n = Math.min(PAGE - inPage, length - done);
      const page = this.pages.get(pageNo);
      if (page) out.set(page.subarray(inPage, inPage + n), done);
      else out.fill(0, done, done + n);
      done += n;
    }
    return out;
  }

  async write(offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions): Promise<void> {
    const length = data.reduce((sum, d) => sum + d.length, 0);
    this.check(offset, length);
    this.stats.writes++;
    if (options?.fua) this.stats.fuaWrites++;
    let pos = offset;
    for (const chunk of data) {
      let done = 0;
      while (done < chunk.length) {
        const pageNo = Math.floor(pos / PAGE);
        const inPage = pos % PAGE;
        const n = Math.min(PAGE - inPage, chunk.length - done);
        let page = this.pages.get(pageNo);
        if (!page) {
          page = new Uint8Array(PAGE);
          this.pages.set(pageNo, page);
        }
        page.set(chunk.subarray(done, done + n), inPage);
        done += n;
        pos += n;
      }
    }
  }

  async flush(): Promise<void> {
    this.check(0, 0);
    this.stats.flushes++;
  }

  async discard(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    this.stats.discards++;
    this.zeroRange(offset, length);
  }

  async writeZeroes(offset: number, length: number, options?: BlockWriteOptions): Promise<void> {
    this.check(offset, length);
    this.stats.writeZeroes++;
    if (options?.fua) this.stats.fuaWrites++;
    this.zeroRange(offset, length);
  }

  private zeroRange(offset: number, length: number): void {
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const pageNo = Math.floor(pos / PAGE);
      const inPage = pos % PAGE;
      const n = Math.min(PAGE - inPage, end - pos);
      if (inPage === 0 && n === PAGE) this.pages.delete(pageNo);
      else this.pages.get(pageNo)?.fill(0, inPage, inPage + n);
      pos += n;
    }
  }

  newHandle(): MemoryVolume {
    return new MemoryVolume(this.name, this.size, this.pages, this.extent);
  }

  /** Bytes of allocated pages: lets tests see that a discard released space. */
  allocatedBytes(): number {
    return this.pages.size * PAGE;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Opens MemoryVolumes by name; each name is created once at `defaultSize` and shared by every opener. */
export class MemoryVolumeProvider implements BlockVolumeProvider {
  private readonly volumes = new Map<string, MemoryVolume>();

  constructor(private readonly defaultSize = 64 * 1024 * 1024) {}

  create(name: string, size = this.defaultSize): MemoryVolume {
    const volume = new MemoryVolume(name, size);
    this.volumes.set(name, volume);
    return volume;
  }

  /** A new handle on the named volume: same bytes, its own closed state and counters. */
  async open(name: string): Promise<MemoryVolume> {
    const volume = this.volumes.get(name);
    if (!volume) throw new FastblockError(ErrorCode.NOT_FOUND, `no volume named ${name}`, { name });
    return volume.newHandle();
  }

  async list(): Promise<string[]> {
    return [...this.volumes.keys()];
  }
}
