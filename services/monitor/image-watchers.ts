/**
 * Who has an image open: every client that opens an image (a gateway serving an export, a VM's
 * library) holds a watch on it at the leader monitor, renewed well within its lease. `image rm`
 * refuses while an image has live watchers, as `rbd rm` does: removing an image under a running
 * VM would hand it I/O errors on its root disk, and the data is gone.
 *
 * Watches are leases kept in the leader's memory only; clients renew at a third of their lease.
 * A new leader has heard no renewal yet, so until every client had its turn to renew (a third of
 * the longest lease, and a margin) it cannot say that an image older than its leadership is
 * unwatched: `watched` then answers "unknown", and the CLI waits that out before it removes.
 */
import { assert } from '../../kernel/errors.js';

/** Lease range a client may ask for. */
export const MIN_WATCH_LEASE_MS = 1000;
export const MAX_WATCH_LEASE_MS = 60_000;
export const DEFAULT_WATCH_LEASE_MS = 30_000;
/** After an election: every client renews within a third of its lease; the margin covers a retry. */
export const WATCH_RENEW_GRACE_MS = MAX_WATCH_LEASE_MS / 3 + 2000;

export interface Watcher {
  /** The client's id, unique per connected client. */
  readonly id: string;
  /** Who it is, for the operator: the client's name and host. */
  readonly description: string;
}

export interface WatcherView extends Watcher {
  readonly expiresInMs: number;
}

interface Lease {
  readonly watcher: Watcher;
  expiresAtMs: number;
  leaseMs: number;
}

export type WatchedAnswer =
  | { readonly known: true; readonly watchers: readonly WatcherView[] }
  /** This monitor leads since less than a lease: watchers of the old leader may not have renewed yet. */
  | { readonly known: false; readonly knownInMs: number };

export class ImageWatchers {
  private readonly byImage = new Map<string, Map<string, Lease>>();
  /** When this monitor's table began (its leadership). */
  private sinceMs = 0;

  constructor(private readonly now: () => number) {}

  /** Leadership (re)gained: whatever was here may be stale, and renewals go elsewhere until now. */
  reset(): void {
    this.byImage.clear();
    this.sinceMs = this.now();
  }

  /** Registers or renews a watch; returns when it expires. */
  watch(imageId: string, watcher: Watcher, leaseMs: number): number {
    assert(leaseMs >= MIN_WATCH_LEASE_MS && leaseMs <= MAX_WATCH_LEASE_MS, `watch lease ${leaseMs} ms out of range`);
    let leases = this.byImage.get(imageId);
    if (!leases) this.byImage.set(imageId, (leases = new Map()));
    const expiresAtMs = this.now() + leaseMs;
    const held = leases.get(watcher.id);
    if (held) {
      held.expiresAtMs = expiresAtMs;
      held.leaseMs = leaseMs;
    } else leases.set(watcher.id, { watcher, expiresAtMs, leaseMs });
    return expiresAtMs;
  }

  unwatch(imageId: string, watcherId: string): boolean {
    const leases = this.byImage.get(imageId);
    const removed = leases?.delete(watcherId) ?? false;
    if (leases?.size === 0) this.byImage.delete(imageId);
    return removed;
  }

  /**
   * Live watchers of an image, or that this monitor cannot know yet. An image created after this
   * leadership began (by the monitors' clock) was never open under an earlier leader: known at once.
   */
  watched(imageId: string, createdMs: number): WatchedAnswer {
    const now = this.now();
    const leases = this.byImage.get(imageId);
    const watchers: WatcherView[] = [];
    for (const [id, lease] of leases ?? []) {
      if (lease.expiresAtMs <= now) leases!.delete(id);
      else watchers.push({ ...lease.watcher, expiresInMs: lease.expiresAtMs - now });
    }
    if (leases?.size === 0) this.byImage.delete(imageId);
    if (watchers.length > 0) return { known: true, watchers };
    const knownAtMs = this.sinceMs + WATCH_RENEW_GRACE_MS;
    if (now < knownAtMs && createdMs < this.sinceMs) return { known: false, knownInMs: knownAtMs - now };
    return { known: true, watchers };
  }

  /** Drops the watches of a removed image. */
  forget(imageId: string): void {
    this.byImage.delete(imageId);
  }
}
