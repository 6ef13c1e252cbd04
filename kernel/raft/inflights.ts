/**
 * A bounded window of AppendEntries in flight to one follower, as the last index each carried.
 * Full means the leader waits for acknowledgements before sending more (flow control).
 */
export class Inflights {
  private readonly ring: Float64Array;
  private start = 0;
  count = 0;

  constructor(readonly capacity: number) {
    this.ring = new Float64Array(capacity);
  }

  full(): boolean {
    return this.count === this.capacity;
  }

  add(lastIndex: number): void {
    this.ring[(this.start + this.count) % this.capacity] = lastIndex;
    this.count++;
  }

  /** Frees every message whose last index is <= index. */
  freeTo(index: number): void {
    while (this.count > 0 && this.ring[this.start]! <= index) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}
