/**
 * The fallback engine: Node's fs module on a buffered descriptor, durability by fdatasync. It works
 * wherever Node does (no io_uring, no addon), at the cost of the page cache and a thread-pool hop
 * per I/O.
 */
import { fdatasync, readv, writev } from 'node:fs';
import { type Buffers, asList } from './bdev.js';
import { type IoEngine, ioError } from './io-engine.js';

const ZEROES = new Uint8Array(1 << 20);

function failure(op: string, err: NodeJS.ErrnoException, context: Record<string, unknown>): Error {
  return ioError(op, -(err.errno ?? -5), context);
}

export class FsEngine implements IoEngine {
  readonly backend = 'fs' as const;
  readonly direct = false;

  read(fd: number, offset: number, buffers: Buffers, length: number): Promise<void> {
    return new Promise((resolve, reject) => {
      readv(fd, asList(buffers) as Uint8Array[], offset, (err, n) => {
        if (err) reject(failure('read', err, { fd, offset, length }));
        else if (n !== length) reject(ioError('read', 5, { fd, offset, length, transferred: n }));
        else resolve();
      });
    });
  }

  write(fd: number, offset: number, buffers: Buffers, length: number, durable = false): Promise<void> {
    if (durable) return this.write(fd, offset, buffers, length).then(() => this.fdatasync(fd));
    return new Promise((resolve, reject) => {
      writev(fd, asList(buffers) as Uint8Array[], offset, (err, n) => {
        if (err) reject(failure('write', err, { fd, offset, length }));
        else if (n !== length) reject(ioError('write', 5, { fd, offset, length, transferred: n }));
        else resolve();
      });
    });
  }

  async zero(fd: number, offset: number, length: number): Promise<void> {
    for (let done = 0; done < length; done += ZEROES.length) {
      const n = Math.min(ZEROES.length, length - done);
      await this.write(fd, offset + done, ZEROES.subarray(0, n), n);
    }
  }

  fdatasync(fd: number): Promise<void> {
    return new Promise((resolve, reject) => {
      fdatasync(fd, (err) => (err ? reject(failure('fdatasync', err, { fd })) : resolve()));
    });
  }
}
