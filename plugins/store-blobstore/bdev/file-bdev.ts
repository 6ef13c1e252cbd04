/**
 * A regular file or a block device (or a region of one), locked for exclusive use.
 *
 * The region [offsetBytes, offsetBytes + sizeBytes) is locked with an open-file-description
 * lock, so a second opener — another process, or another shard thread of this one given an
 * overlapping region — gets BUSY, while shards on disjoint regions of one device coexist.
 */
import { closeSync, constants, existsSync, fstatSync, ftruncateSync, openSync } from 'node:fs';
import { FastblockError, ErrorCode } from '../../../kernel/errors.js';
import type { Logger } from '../../../kernel/logger.js';
import { native, nativeLoadError } from '../native.js';
import { type Bdev, type Buffers, type WriteCaching, checkRange, totalLength } from './bdev.js';
import { FsEngine } from './fs-engine.js';
import type { IoBackend, IoEngine } from './io-engine.js';
import { UringEngine } from './uring-engine.js';

export type IoChoice = IoBackend | 'auto';

export interface FileBdevOptions {
  readonly path: string;
  /** Bytes of the region to use; a regular file is created or extended to hold it when `create`. */
  readonly sizeBytes: number;
  readonly offsetBytes?: number;
  readonly create: boolean;
  /** 'auto' (io_uring when it works here, else fs) unless FASTBLOCK_STORE_IO says otherwise. */
  readonly io?: IoChoice;
  readonly logger?: Logger;
}

/** FASTBLOCK_STORE_IO=uring|fs|auto overrides the configured choice (tests run both). */
export function effectiveIoChoice(configured: IoChoice = 'auto'): IoChoice {
  const env = process.env.FASTBLOCK_STORE_IO;
  if (env === 'uring' || env === 'fs' || env === 'auto') return env;
  return configured;
}

/** Why io_uring cannot be used here, or undefined when it can. */
export function uringUnavailableReason(): string | undefined {
  if (native === undefined) return `native addon not loaded (${nativeLoadError?.message ?? 'unknown'})`;
  const errno = native.probeUring();
  return errno === 0 ? undefined : `io_uring_setup failed with errno ${errno}`;
}

function chooseEngine(choice: IoChoice, logger: Logger | undefined, path: string): IoEngine {
  if (choice === 'fs') return new FsEngine();
  const reason = uringUnavailableReason();
  if (reason === undefined) return UringEngine.get();
  if (choice === 'uring') throw new FastblockError(ErrorCode.CONFIG_INVALID, `io backend uring requested but unavailable: ${reason}`, { path, reason });
  logger?.warn({ path, reason }, 'io_uring unavailable; falling back to the fs module (buffered I/O + fdatasync)');
  return new FsEngine();
}

export class FileBdev implements Bdev {
  readonly blockSize = 4096;
  private closed = false;

  private constructor(
    readonly name: string,
    readonly sizeBytes: number,
    private readonly fd: number,
    private readonly base: number,
    readonly engine: IoEngine,
  ) {}

  get backend(): IoBackend {
    return this.engine.backend;
  }

  static open(options: FileBdevOptions): FileBdev {
    const { path, create, logger } = options;
    const base = options.offsetBytes ?? 0;
    if (base % 4096 !== 0 || options.sizeBytes <= 0 || options.sizeBytes % 4096 !== 0) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'device region must be 4 KiB-aligned and non-empty', { path, offsetBytes: base, sizeBytes: options.sizeBytes });
    }
    if (!existsSync(path) && !create) throw new FastblockError(ErrorCode.NOT_FOUND, `device ${path} does not exist`, { path });
    const engine = chooseEngine(effectiveIoChoice(options.io), logger, path);
    const fd = FileBdev.openFd(path, create, engine);
    try {
      const stat = fstatSync(fd);
      let available: number;
      if (stat.isBlockDevice()) {
        available = native !== undefined ? native.deviceSize(fd) : options.sizeBytes + base;
        if (available < 0) throw new FastblockError(ErrorCode.IO_ERROR, `cannot read the size of ${path}`, { path, errno: -available });
      } else if (stat.isFile()) {
        available = stat.size;
        if (available < base + options.sizeBytes && create) {
          FileBdev.extend(fd, path, base + options.sizeBytes);
          available = base + options.sizeBytes;
        }
      } else {
        throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${path} is neither a regular file nor a block device`, { path });
      }
      const size = Math.floor(Math.min(options.sizeBytes, available - base) / 4096) * 4096;
      if (size <= 0) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `device ${path} is too small for the region`, { path, available, offsetBytes: base, sizeBytes: options.sizeBytes });
      FileBdev.lock(fd, path, base, size, logger);
      logger?.info({ path, offsetBytes: base, sizeBytes: size, io: engine.backend }, 'device opened');
      return new FileBdev(base === 0 ? path : `${path}@${base}`, size, fd, base, engine);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  private static openFd(path: string, create: boolean, engine: IoEngine): number {
    const flags = constants.O_RDWR | (create ? constants.O_CREAT : 0) | (engine.direct ? constants.O_DIRECT : 0);
    try {
      return openSync(path, flags);
    } catch (err) {
      const direct = engine.direct ? ' with O_DIRECT' : '';
      throw new FastblockError(ErrorCode.IO_ERROR, `cannot open ${path}${direct}: ${(err as Error).message}`, { path }, { cause: err });
    }
  }

  /** Grows a regular file without ever shrinking it: shard threads may race to extend one file. */
  private static extend(fd: number, path: string, bytes: number): void {
    if (native === undefined) {
      if (fstatSync(fd).size < bytes) ftruncateSync(fd, bytes);
      return;
    }
    const errno = native.extendTo(fd, bytes);
    if (errno !== 0) throw new FastblockError(errno === 28 ? ErrorCode.NO_SPACE : ErrorCode.IO_ERROR, `cannot extend ${path} to ${bytes} bytes (errno ${errno})`, { path, bytes, errno });
  }

  private static lock(fd: number, path: string, offset: number, length: number, logger: Logger | undefined): void {
    if (native === undefined) {
      logger?.warn({ path }, 'no exclusive lock: the native addon is not loaded');
      return;
    }
    const errno = native.lockRegion(fd, offset, length);
    if (errno !== 0) {
      throw new FastblockError(ErrorCode.BUSY, `${path} is already open by another process or shard`, { path, offsetBytes: offset, sizeBytes: length, errno });
    }
  }

  read(offset: number, buffers: Buffers): Promise<void> {
    const length = totalLength(buffers);
    this.check(offset, length);
    return this.engine.read(this.fd, this.base + offset, buffers, length);
  }

  write(offset: number, buffers: Buffers, _cache?: WriteCaching, durable = false): Promise<void> {
    const length = totalLength(buffers);
    this.check(offset, length);
    return this.engine.write(this.fd, this.base + offset, buffers, length, durable);
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    return this.engine.zero(this.fd, this.base + offset, length);
  }

  flush(): Promise<void> {
    this.check(0, this.blockSize);
    return this.engine.fdatasync(this.fd);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private check(offset: number, length: number): void {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, `${this.name} is closed`, { device: this.name });
    checkRange(this, offset, length);
  }
}
