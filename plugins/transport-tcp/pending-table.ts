/**
 * A connection's requests in flight, by request id. Ids are handed out in sequence, so the ids in
 * flight at once lie in a window no wider than the oldest request's age: a table indexed by the
 * id's low bits holds them with one array load per lookup. A Map did the same with a hash lookup,
 * and grew and shrank (a rehash and a new backing store each time) as a burst filled it and its
 * replies emptied it, several times a millisecond under load.
 *
 * Two live ids on one slot (the window outgrew the table: a request much older than the rest) double
 * the table until they part. The table never shrinks: its size is the widest window this connection
 * has seen, which the request timeout bounds.
 */
import { assert } from '../../kernel/errors.js';

const INITIAL_SLOTS = 64;

export class PendingTable<T> {
  private ids: number[] = new Array<number>(INITIAL_SLOTS).fill(0);
  private values: (T | undefined)[] = new Array<T | undefined>(INITIAL_SLOTS).fill(undefined);
  private mask = INITIAL_SLOTS - 1;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(id: number): T | undefined {
    const slot = id & this.mask;
    return this.ids[slot] === id ? this.values[slot] : undefined;
  }

  has(id: number): boolean {
    return this.ids[id & this.mask] === id;
  }

  /** Adds `id` (non-zero, not in the table). */
  set(id: number, value: T): void {
    assert(id !== 0, 'request id 0 is the hello');
    let slot = id & this.mask;
    while (this.ids[slot] !== 0) {
      assert(this.ids[slot] !== id, `request id ${id} is already in flight`);
      this.grow();
      slot = id & this.mask;
    }
    this.ids[slot] = id;
    this.values[slot] = value;
    this.count++;
  }

  /** Removes `id` and returns what it held; undefined when it was not in the table. */
  take(id: number): T | undefined {
    const slot = id & this.mask;
    if (this.ids[slot] !== id) return undefined;
    const value = this.values[slot];
    this.ids[slot] = 0;
    this.values[slot] = undefined;
    this.count--;
    return value;
  }

  /** The ids in the table, oldest request first (ids are issued in order, and wrap at 2^32). */
  keys(): number[] {
    const keys: number[] = [];
    for (const id of this.ids) if (id !== 0) keys.push(id);
    if (keys.length < 2) return keys;
    // Order by distance from the newest id, modulo 2^32, so a wrapped sequence stays in issue order.
    let newest = keys[0]!;
    for (const id of keys) if (((id - newest) >>> 0) < 0x8000_0000) newest = id;
    return keys.sort((a, b) => ((newest - b) >>> 0) - ((newest - a) >>> 0));
  }

  private grow(): void {
    const ids = this.ids;
    const values = this.values;
    const slots = ids.length * 2;
    this.ids = new Array<number>(slots).fill(0);
    this.values = new Array<T | undefined>(slots).fill(undefined);
    this.mask = slots - 1;
    for (let slot = 0; slot < ids.length; slot++) {
      const id = ids[slot]!;
      if (id === 0) continue;
      const to = id & this.mask;
      // Two ids that shared a slot in the half-size table differ in the new bit, or stayed together:
      // in the second case the caller's loop grows again.
      if (this.ids[to] === 0) {
        this.ids[to] = id;
        this.values[to] = values[slot];
      } else {
        assert(false, 'ids sharing a slot after a grow: only the id being added can collide');
      }
    }
  }
}
