/**
 * Request deadlines without a timer per request. Requests mostly share one timeout, so their
 * deadlines arrive in order within each distinct timeout value: one FIFO lane per value, and a
 * single timer armed for the earliest lane head. Entries of requests that already settled stay
 * in their lane and are skipped when reached (isLive). Expiry may run up to SLACK_MS late.
 */
const SLACK_MS = 5;

interface Lane {
  ids: number[];
  deadlines: number[];
  head: number;
}

export class DeadlineQueue {
  private readonly lanes = new Map<number, Lane>();
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Infinity;

  constructor(
    private readonly isLive: (id: number) => boolean,
    private readonly expire: (id: number, timeoutMs: number) => void,
  ) {}

  add(id: number, timeoutMs: number): void {
    const deadline = performance.now() + timeoutMs;
    let lane = this.lanes.get(timeoutMs);
    if (!lane) {
      lane = { ids: [], deadlines: [], head: 0 };
      this.lanes.set(timeoutMs, lane);
    }
    // Requests mostly finish in order: drop settled ones from the head so a lane stays about as
    // long as what is in flight (a stuck head holds back at most timeout x rate entries).
    while (lane.head < lane.ids.length && !this.isLive(lane.ids[lane.head]!)) lane.head++;
    if (lane.head > 1024 && lane.head * 2 > lane.ids.length) {
      lane.ids = lane.ids.slice(lane.head);
      lane.deadlines = lane.deadlines.slice(lane.head);
      lane.head = 0;
    }
    lane.ids.push(id);
    lane.deadlines.push(deadline);
    if (deadline + SLACK_MS < this.armedAt) this.arm(deadline);
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
    this.lanes.clear();
  }

  private arm(deadline: number): void {
    clearTimeout(this.timer);
    this.armedAt = deadline;
    this.timer = setTimeout(() => this.fire(), Math.max(0, deadline - performance.now()) + SLACK_MS);
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [timeoutMs, lane] of this.lanes) {
      while (lane.head < lane.ids.length && (lane.deadlines[lane.head]! <= now || !this.isLive(lane.ids[lane.head]!))) {
        const id = lane.ids[lane.head]!;
        lane.head++;
        if (this.isLive(id)) this.expire(id, timeoutMs);
      }
      if (lane.head === lane.ids.length) {
        this.lanes.delete(timeoutMs);
        continue;
      }
      if (lane.head > 1024) {
        lane.ids = lane.ids.slice(lane.head);
        lane.deadlines = lane.deadlines.slice(lane.head);
        lane.head = 0;
      }
      next = Math.min(next, lane.deadlines[lane.head]!);
    }
    if (next !== Infinity) this.arm(next);
  }
}
