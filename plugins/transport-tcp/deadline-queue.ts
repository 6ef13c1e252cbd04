/**
 * Request deadlines without a timer per request. Requests mostly share one timeout, so their
 * deadlines arrive in order within each timeout value: one FIFO lane per value and a single timer
 * armed for the earliest lane head. Settled requests stay in their lane and are skipped when
 * reached (isLive), and dropped from the head as new ones arrive, so a lane holds about what is
 * in flight.
 *
 * Timeouts share a lane when they agree in their top 4 bits (a caller that passes "what is left
 * of my deadline" makes many distinct values): at most 16 lanes per doubling of the timeout. An
 * entry behind a later deadline in its lane may therefore expire up to 1/8 of its timeout late,
 * plus SLACK_MS; never early.
 */
const SLACK_MS = 5;

interface Lane {
  ids: number[];
  deadlines: number[];
  timeouts: number[];
  head: number;
}

function laneOf(timeoutMs: number): number {
  if (timeoutMs <= 16) return Math.max(0, Math.ceil(timeoutMs));
  const unit = 2 ** (Math.floor(Math.log2(timeoutMs)) - 3);
  return Math.ceil(timeoutMs / unit) * unit;
}

export class DeadlineQueue {
  private readonly lanes = new Map<number, Lane>();
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Infinity;
  private lastTimeoutMs = NaN;
  private lastLane: Lane | undefined;

  constructor(
    private readonly isLive: (id: number) => boolean,
    private readonly expire: (id: number, timeoutMs: number) => void,
  ) {}

  /** Lanes in use (for tests: bounded whatever timeouts callers pass). */
  get laneCount(): number {
    return this.lanes.size;
  }

  add(id: number, timeoutMs: number): void {
    const deadline = performance.now() + timeoutMs;
    // Most requests pass the same timeout: its lane is kept at hand (until the lane is dropped).
    let lane = timeoutMs === this.lastTimeoutMs ? this.lastLane : undefined;
    if (!lane) {
      const key = laneOf(timeoutMs);
      lane = this.lanes.get(key);
      if (!lane) {
        lane = { ids: [], deadlines: [], timeouts: [], head: 0 };
        this.lanes.set(key, lane);
      }
      this.lastTimeoutMs = timeoutMs;
      this.lastLane = lane;
    }
    while (lane.head < lane.ids.length && !this.isLive(lane.ids[lane.head]!)) lane.head++;
    if (lane.head > 1024 && lane.head * 2 > lane.ids.length) compact(lane);
    lane.ids.push(id);
    lane.deadlines.push(deadline);
    lane.timeouts.push(timeoutMs);
    if (deadline + SLACK_MS < this.armedAt) this.arm(deadline);
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
    this.lanes.clear();
    this.lastLane = undefined;
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
    for (const [key, lane] of this.lanes) {
      while (lane.head < lane.ids.length && (lane.deadlines[lane.head]! <= now || !this.isLive(lane.ids[lane.head]!))) {
        const id = lane.ids[lane.head]!;
        const timeoutMs = lane.timeouts[lane.head]!;
        lane.head++;
        if (this.isLive(id)) this.expire(id, timeoutMs);
      }
      if (lane.head === lane.ids.length) {
        this.lanes.delete(key);
        if (lane === this.lastLane) this.lastLane = undefined;
        continue;
      }
      if (lane.head > 1024) compact(lane);
      next = Math.min(next, lane.deadlines[lane.head]!);
    }
    if (next !== Infinity) this.arm(next);
  }
}

function compact(lane: Lane): void {
  lane.ids = lane.ids.slice(lane.head);
  lane.deadlines = lane.deadlines.slice(lane.head);
  lane.timeouts = lane.timeouts.slice(lane.head);
  lane.head = 0;
}
