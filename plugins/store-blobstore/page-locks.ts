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
  /** Later overlapping acquirers, called at release (most locks never have any). */
  waiters: (() => void)[] | undefined;
}

export class PageLocks {
  private readonly held: Held[] = [];

  /** Takes [start, end) (page numbers) after every overlapping earlier holder; returns the release. */
  acquire(start: number, end: number): Promise<() => void> {
    const blockers = this.overlapping(start, end);
    if (blockers === 0) return Promise.resolve(this.hold(start, end));
    const entry: Held = { start, end, waiters: undefined };
    const release = this.releaser(entry);
    let waiting = blockers;
    const granted = new Promise<() => void>((resolve) => {
      const unblocked = (): void => {
        if (--waiting === 0) resolve(release);
      };
      for (const h of this.held) if (h.start < end && start < h.end) (h.waiters ??= []).push(unblocked);
    });
    this.held.push(entry);
    return granted;
  }

  /** Takes [start, end) now if no earlier holder overlaps it (returns the release), else nothing. */
  tryAcquire(start: number, end: number): (() => void) | undefined {
    return this.overlapping(start, end) === 0 ? this.hold(start, end) : undefined;
  }

  /** No holder overlaps [start, end): a write of it now would not wait. */
  isFree(start: number, end: number): boolean {
    return this.overlapping(start, end) === 0;
  }

  private overlapping(start: number, end: number): number {
    let n = 0;
    for (const h of this.held) if (h.start < end && start < h.end) n++;
    return n;
  }

  private hold(start: number, end: number): () => void {
    const entry: Held = { start, end, waiters: undefined };
    this.held.push(entry);
    return this.releaser(entry);
  }

  private releaser(entry: Held): () => void {
    return () => {
      const at = this.held.indexOf(entry);
      if (at < 0) return; // released already
      this.held.splice(at, 1);
      const waiters = entry.waiters;
      entry.waiters = undefined;
      if (waiters !== undefined) for (const unblocked of waiters) unblocked();
    };
  }
}
