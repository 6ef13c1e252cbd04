/**
 * Payload bytes held by requests in flight across all connections of a server. Per-connection
 * limits alone let a thousand clients pin a thousand times as much; when the shared budget is
 * spent, every connection stops reading new requests until some finish.
 */
import { assert } from '../../kernel/errors.js';

export class ByteBudget {
  private used = 0;
  private waiters: Array<() => void> = [];

  constructor(readonly limit: number) {
    assert(Number.isSafeInteger(limit) && limit > 0, 'byte budget must be a positive integer');
  }

  get exhausted(): boolean {
    return this.used >= this.limit;
  }

  get inUse(): number {
    return this.used;
  }

  take(bytes: number): void {
    this.used += bytes;
  }

  give(bytes: number): void {
    this.used -= bytes;
    assert(this.used >= 0, 'byte budget given back more than was taken');
    if (!this.exhausted && this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Resolves once the budget is not exhausted (at once if it is not now). */
  available(): Promise<void> {
    if (!this.exhausted) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
