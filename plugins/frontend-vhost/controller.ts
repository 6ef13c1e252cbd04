/**
 * A vhost-user-blk controller: one volume behind one unix socket. QEMU connects to the socket (and,
 * with `reconnect=`, again after this process restarts); one front-end at a time is served, a second
 * one is turned away with a logged reason.
 */
import { lstatSync, unlinkSync } from 'node:fs';
import type { Logger } from 'pino';
import type { BlockVolume } from '../../kernel/contracts/block.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { Connection } from './connection.js';
import type { VhostNative, Watcher } from './native.js';

export interface ControllerSpec {
  readonly socket: string;
  readonly queues: number;
  /** How often the volume's size is checked; a change is announced to the front-end (ms). */
  readonly sizeCheckMs?: number;
}

export const MAX_QUEUES = 64;

export class VhostController {
  private readonly listenFd: number;
  private readonly watcher: Watcher;
  private connection: Connection | undefined;
  /** A front-end that connected while the previous session was still draining. */
  private waiting: number | undefined;
  private closed = false;
  /** The size the front-end was last told of. */
  private announcedSize: number;
  private readonly sizeTimer: NodeJS.Timeout;

  constructor(
    readonly volume: BlockVolume,
    readonly spec: ControllerSpec,
    private readonly native: VhostNative,
    private readonly log: Logger,
  ) {
    if (!Number.isInteger(spec.queues) || spec.queues < 1 || spec.queues > MAX_QUEUES) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `queues must be an integer in [1, ${MAX_QUEUES}]`, { queues: spec.queues });
    }
    removeStaleSocket(spec.socket);
    this.listenFd = native.listen(spec.socket);
    this.watcher = new native.Watcher(this.listenFd, () => this.accept());
    // A volume's size follows the cluster map (an image resize): the guest hears of it through the
    // front-end, which reads the config space again when told it changed.
    this.announcedSize = volume.size;
    this.sizeTimer = setInterval(() => this.checkSize(), spec.sizeCheckMs ?? 1000);
    this.sizeTimer.unref();
  }

  private checkSize(): void {
    const size = this.volume.size;
    if (size === this.announcedSize) return;
    const told = this.connection?.configChanged() ?? false;
    this.log.info({ size, before: this.announcedSize, told }, told ? 'volume resized: the front-end was told' : 'volume resized: the guest sees it when it next connects');
    this.announcedSize = size;
  }

  get clients(): number {
    return this.connection ? 1 : 0;
  }

  private accept(): void {
    let fd: number;
    while ((fd = this.native.accept(this.listenFd)) >= 0) {
      if (this.closed || (this.connection && !this.connection.closing) || this.waiting !== undefined) {
        this.log.warn('refused a second front-end: one is already connected');
        this.native.close(fd);
        continue;
      }
      if (this.connection) {
        // The previous session still has requests in flight that will write into guest memory.
        // The new one (a reconnect) starts only after they finish, or it could resubmit the same
        // heads and hand buffers back to the guest before a stale read lands in them.
        const pending = fd;
        this.waiting = pending;
        void this.connection.done.then(() => {
          this.waiting = undefined;
          if (this.closed) this.native.close(pending);
          else this.serve(pending);
        });
        continue;
      }
      this.serve(fd);
    }
  }

  private serve(fd: number): void {
    const serial = this.volume.name.slice(-20);
    const connection = new Connection(fd, { volume: this.volume, queues: this.spec.queues, serial }, this.native, this.log);
    this.connection = connection;
    this.log.info('front-end connected');
    void connection.done.then(() => {
      if (this.connection === connection) this.connection = undefined;
    });
  }

  /** Stops listening, drops the front-end, closes the volume and removes the socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sizeTimer);
    this.watcher.stop();
    this.native.close(this.listenFd);
    const connection = this.connection;
    connection?.close('controller removed');
    await connection?.done;
    try {
      unlinkSync(this.spec.socket);
    } catch {
      // already gone
    }
    await this.volume.close();
  }
}

/** A socket file left by a process that died is replaced; anything else at the path is an error. */
function removeStaleSocket(path: string): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new FastblockError(ErrorCode.ALREADY_EXISTS, `${path} exists and is not a socket`, { path });
  unlinkSync(path);
}
