/**
 * The watches a client holds on the images it has open (services/monitor/image-watchers.ts):
 * registered at open, renewed at a third of the lease, dropped at close. They are what makes
 * `fastblock image rm` refuse to remove an image that a gateway or a VM still uses.
 *
 * A watch is best effort on the client's side: an image opens even when the monitors cannot be
 * reached (its I/O goes to the OSDs), and the renewal timer keeps trying, so the watch is in
 * place as soon as a leader answers, and again at a new leader after an election.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { ImageInfo } from '../kernel/contracts/cluster-map.js';

/** What a client needs of the monitors to hold watches: their admin commands. */
export interface WatchAdmin {
  admin(command: string, args: Readonly<Record<string, unknown>>): Promise<unknown>;
}

export interface ImageWatch {
  /** Drops the watch (at the monitor too, if it answers). */
  close(): Promise<void>;
}

export interface ImageWatchRegistry {
  /** Starts watching an image the client opened. Never rejects: see the file comment. */
  watch(image: ImageInfo, poolName: string): ImageWatch;
}

export const WATCH_LEASE_MS = 30_000;
const UNWATCH_WAIT_MS = 2000;

export class MonitorImageWatches implements ImageWatchRegistry {
  /** This client, as the monitor lists it among an image's watchers. */
  readonly id: string;
  readonly description: string;

  constructor(
    private readonly monitors: WatchAdmin,
    clientName: string,
    private readonly leaseMs = WATCH_LEASE_MS,
  ) {
    // The monitor takes ids of name characters only; the description carries the rest.
    const stem = clientName.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 40) || 'client';
    this.id = `${stem}.${randomBytes(6).toString('hex')}`;
    this.description = `${clientName} on ${hostname()} (pid ${process.pid})`.slice(0, 200);
  }

  watch(image: ImageInfo, poolName: string): ImageWatch {
    const args = { pool: poolName, name: image.name, id: this.id };
    let closed = false;
    const renew = (): Promise<void> =>
      this.monitors.admin('image watch', { ...args, description: this.description, leaseMs: this.leaseMs }).then(
        () => undefined,
        () => undefined,
      );
    let registering = renew();
    const timer = setInterval(() => {
      if (!closed) registering = renew();
    }, Math.floor(this.leaseMs / 3));
    // The timer must not keep a process alive on its own: the open image's I/O does.
    timer.unref();
    return {
      close: async () => {
        if (closed) return;
        closed = true;
        clearInterval(timer);
        // A close does not wait long for unreachable monitors: the lease ends the watch anyway.
        let timeout: NodeJS.Timeout | undefined;
        await Promise.race([
          registering.then(() => this.monitors.admin('image unwatch', args)).catch(() => undefined),
          new Promise<void>((resolve) => (timeout = setTimeout(resolve, UNWATCH_WAIT_MS))),
        ]);
        clearTimeout(timeout);
      },
    };
  }
}
