/**
 * Page-range locks of one object: a write holds the pages it touches, so a read-modify-write of
 * an edge page never interleaves with another write of that page. Disjoint writes never wait.
 */
interface Held {
  readonly start: number;
  readonly end: number;
  readonly released: Promise<void>;
}

export class PageLocks {
  private held: Held[] = [];

  /** Waits for overlapping holders, takes [start, end) (page numbers); returns the release. */
  async acquire(start: number, end: number): Promise<() => void> {
    for (;;) {
      const blocker = this.held.find((h) => h.start < end && start < h.end);
      if (blocker === undefined) break;
      await blocker.released;
    }
    let release!: () => void;
    const entry: Held = { start, end, released: new Promise<void>((resolve) => (release = resolve)) };
    this.held.push(entry);
    return () => {
      this.held = this.held.filter((h) => h !== entry);
      release();
    };
  }
}
