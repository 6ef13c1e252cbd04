/**
 * A counting semaphore: bounds the object I/Os one image keeps in flight. FIFO, so no I/O starves.
 * A free slot is taken synchronously (`tryAcquire`), so an I/O below the limit costs no promise.
 */
import { assert } from '../kernel/errors.js';

export class InFlightLimit {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {
    assert(Number.isSafeInteger(limit) && limit > 0, 'in-flight limit is a positive integer');
  }

  get inFlight(): number {
    return this.active;
  }

  /** Takes a slot if one is free and nobody waits for one. */
  tryAcquire(): boolean {
    if (this.active >= this.limit) return false;
    this.active++;
    return true;
  }

  /** Resolves holding a slot, after those that asked earlier. */
  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    // The slot passes straight to the next waiter, so `active` stays at the limit while any wait.
    if (next) next();
    else this.active--;
    assert(this.active >= 0, 'in-flight limit released more than acquired');
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (!this.tryAcquire()) await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }
}
