/**
 * Page-range locks of one object: a write holds the pages it touches, so a read-modify-write of
 * an edge page never interleaves with another write of that page. Disjoint writes never wait.
 *
 * A lock is taken in call order: acquire() registers the range at once and waits only for the
 * overlapping holders registered before it. So writes to overlapping ranges issued one after
 * another, without waiting for each other, land in the order they were issued (the PG applies a
 * batch of committed ops that way), and no waiter can deadlock (each waits for earlier ones only).
 */
interface Held {
  readonly start: number;
  readonly end: number;
  readonly released: Promise<void>;
}

export class PageLocks {
  private held: Held[] = [];

  /** Takes [start, end) (page numbers) after every overlapping earlier holder; returns the release. */
  acquire(start: number, end: number): Promise<() => void> {
    let blockers: Promise<void>[] | undefined;
    for (const h of this.held) {
      if (h.start < end && start < h.end) (blockers ??= []).push(h.released);
    }
    let resolve!: () => void;
    const entry: Held = { start, end, released: new Promise<void>((r) => (resolve = r)) };
    this.held.push(entry);
    const release = (): void => {
      this.held = this.held.filter((h) => h !== entry);
      resolve();
    };
    if (blockers === undefined) return Promise.resolve(release);
    return Promise.all(blockers).then(() => release);
  }
}
