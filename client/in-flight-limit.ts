/** A counting semaphore: bounds the object I/Os one image keeps in flight. FIFO, so no I/O starves. */
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

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `active` stays at the limit while any wait.
      if (next) next();
      else this.active--;
    }
  }
}
