/**
 * How a FileBdev moves bytes: io_uring through the addon (O_DIRECT), or Node's fs module (the
 * libuv thread pool, buffered I/O + fdatasync) where io_uring is unavailable.
 */
import { constants as errnoNames } from 'node:os';
import { FastblockError, ErrorCode } from '../../../kernel/errors.js';
import type { Buffers } from './bdev.js';

export type IoBackend = 'uring' | 'fs';

export interface IoEngine {
  readonly backend: IoBackend;
  /** Whether the descriptor must be opened with O_DIRECT (and buffers aligned). */
  readonly direct: boolean;
  read(fd: number, offset: number, buffers: Buffers, length: number): Promise<void>;
  /** `durable`: on the medium when the promise resolves (RWF_DSYNC; the fs engine adds an fdatasync), not only in the device's cache. */
  write(fd: number, offset: number, buffers: Buffers, length: number, durable?: boolean): Promise<void>;
  zero(fd: number, offset: number, length: number): Promise<void>;
  fdatasync(fd: number): Promise<void>;
}

const errnoByNumber = new Map<number, string>(Object.entries(errnoNames.errno).map(([name, n]) => [n, name]));

export function ioError(op: string, errno: number, context: Record<string, unknown>): FastblockError {
  const name = errnoByNumber.get(errno) ?? `errno ${errno}`;
  const code = errno === errnoNames.errno.ENOSPC ? ErrorCode.NO_SPACE : ErrorCode.IO_ERROR;
  return new FastblockError(code, `${op} failed: ${name}`, { ...context, op, errno: name });
}
