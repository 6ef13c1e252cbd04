/**
 * What flush() and close() wait for: the writes in flight when they were called, and no later
 * ones (a flush must not wait behind writes issued after it). Writes are counted per generation;
 * a flush seals the current generation and waits until every sealed one has drained. Per write
 * this is a counter up and down, where a set of promises cost an allocation and a settle callback.
 */
import { assert } from '../kernel/errors.js';

export class WriteGeneration {
  pending = 0;
  private sealed = false;
  private drainedPromise: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  /** Called once no write can join it any more; resolves when the last of its writes leaves. */
  seal(): Promise<void> {
    this.sealed = true;
    if (this.pending === 0) return Promise.resolve();
    this.drainedPromise ??= new Promise<void>((resolve) => (this.wake = resolve));
    return this.drainedPromise;
  }

  leave(): void {
    this.pending--;
    assert(this.pending >= 0, 'write generation left more often than entered');
    if (this.pending === 0 && this.sealed) this.wake?.();
  }
}

export class WriteBarrier {
  private current = new WriteGeneration();
  /** Sealed generations with writes still in flight. */
  private readonly draining = new Set<Promise<void>>();

  /** A write starts: returns the generation to leave when it settles (either way). */
  enter(): WriteGeneration {
    this.current.pending++;
    return this.current;
  }

  /** Resolves when every write that entered before this call has settled. */
  wait(): Promise<void> {
    const sealed = this.current;
    if (sealed.pending > 0) {
      this.current = new WriteGeneration();
      const drained = sealed.seal();
      this.draining.add(drained);
      void drained.then(() => this.draining.delete(drained));
    }
    if (this.draining.size === 0) return Promise.resolve();
    return Promise.all([...this.draining]).then(() => undefined);
  }
}
