/**
 * A split virtqueue (virtio 1.2, 2.7) seen from the device side: the descriptor table, the avail ring
 * the driver fills and the used ring the device fills, all in guest memory. Pure logic on views, so
 * unit tests drive it with rings they build in a buffer.
 *
 * Everything read from the rings is guest input: a head or next index out of range, a chain longer
 * than the queue (a loop), a nested or malformed indirect table, or readable after writable
 * descriptors is a RingError, and the queue is not touched further.
 */
import { ErrorCode, FastblockError, assert } from '../../kernel/errors.js';

const DESC_F_NEXT = 1;
const DESC_F_WRITE = 2;
const DESC_F_INDIRECT = 4;
const AVAIL_F_NO_INTERRUPT = 1;
const DESC_SIZE = 16;

export class RingError extends FastblockError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super(ErrorCode.PROTOCOL, message, context);
  }
}

/** One buffer of a chain, in guest physical addresses. */
export interface Segment {
  readonly address: number;
  readonly length: number;
  readonly writable: boolean;
}

export interface Chain {
  readonly head: number;
  readonly segments: readonly Segment[];
}

export interface RingViews {
  readonly size: number;
  readonly desc: Uint8Array;
  readonly avail: Uint8Array;
  readonly used: Uint8Array;
}

/** Bytes each part of a split ring of `size` entries occupies (with the event-idx fields). */
export function ringBytes(size: number): { desc: number; avail: number; used: number } {
  return { desc: DESC_SIZE * size, avail: 6 + 2 * size, used: 6 + 8 * size };
}

export function isValidQueueSize(size: number): boolean {
  return Number.isInteger(size) && size > 0 && size <= 32768 && (size & (size - 1)) === 0;
}

export class SplitRing {
  readonly size: number;
  private readonly desc: DataView;
  private readonly avail: DataView;
  private readonly used: DataView;
  /** Next avail entry to take. */
  lastAvail: number;
  /** Our copy of used->idx (we are its only writer). */
  usedIdx: number;
  private signalledUsed = 0;
  private signalledValid = false;

  /**
   * @param resolveTable views an indirect table (guest physical address, length) or undefined when
   *   it is not inside guest memory.
   */
  constructor(
    views: RingViews,
    private readonly eventIdx: boolean,
    private readonly resolveTable: (address: number, length: number) => Uint8Array | undefined,
    private readonly fence: () => void,
    base = 0,
  ) {
    assert(isValidQueueSize(views.size), 'queue size checked by the caller');
    const need = ringBytes(views.size);
    assert(views.desc.length >= need.desc && views.avail.length >= need.avail && views.used.length >= need.used, 'ring views sized by the caller');
    this.size = views.size;
    this.desc = new DataView(views.desc.buffer, views.desc.byteOffset, need.desc);
    this.avail = new DataView(views.avail.buffer, views.avail.byteOffset, need.avail);
    this.used = new DataView(views.used.buffer, views.used.byteOffset, need.used);
    this.lastAvail = base & 0xffff;
    this.usedIdx = this.used.getUint16(2, true);
  }

  availIdx(): number {
    return this.avail.getUint16(2, true);
  }

  /** Used idx as it is in guest memory (recovery compares it with the inflight record). */
  usedIdxInMemory(): number {
    return this.used.getUint16(2, true);
  }

  /** Entries the driver made available that we have not taken. */
  pending(): number {
    const n = (this.availIdx() - this.lastAvail) & 0xffff;
    if (n > this.size) throw new RingError('avail idx ran more than a queue ahead', { availIdx: this.availIdx(), lastAvail: this.lastAvail, size: this.size });
    return n;
  }

  /** Takes the next available head, or undefined. */
  pop(): number | undefined {
    if (this.pending() === 0) return undefined;
    const head = this.avail.getUint16(4 + 2 * (this.lastAvail % this.size), true);
    if (head >= this.size) throw new RingError('avail ring names a head outside the descriptor table', { head, size: this.size });
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    return head;
  }

  /** Walks the descriptor chain at head, following one indirect table. */
  chain(head: number): Chain {
    if (head >= this.size) throw new RingError('chain head outside the descriptor table', { head, size: this.size });
    const segments: Segment[] = [];
    let table = this.desc;
    let entries = this.size;
    let index = head;
    let indirect = false;
    let seenWritable = false;
    for (let walked = 0; ; walked++) {
      if (walked >= entries) throw new RingError('descriptor chain longer than its table (a loop)', { head, entries });
      const at = index * DESC_SIZE;
      // The 64-bit address as a number, without a BigInt per descriptor: past 2^53 it would not
      // be exact, and such an address is refused below.
      const high = table.getUint32(at + 4, true);
      const address = high < 2 ** 21 ? high * 2 ** 32 + table.getUint32(at, true) : Infinity;
      const length = table.getUint32(at + 8, true);
      const flags = table.getUint16(at + 12, true);
      const next = table.getUint16(at + 14, true);
      if (flags & DESC_F_INDIRECT) {
        if (indirect) throw new RingError('indirect descriptor inside an indirect table', { head });
        if (flags & DESC_F_NEXT) throw new RingError('indirect descriptor with NEXT set', { head });
        if (segments.length > 0) throw new RingError('indirect descriptor after direct ones', { head });
        if (length === 0 || length % DESC_SIZE !== 0) throw new RingError('indirect table length not a multiple of 16', { head, length });
        const bytes = address !== Infinity ? this.resolveTable(address, length) : undefined;
        if (!bytes) throw new RingError('indirect table outside guest memory', { head, address: table.getBigUint64(at, true).toString(), length });
        table = new DataView(bytes.buffer, bytes.byteOffset, length);
        entries = length / DESC_SIZE;
        index = 0;
        walked = -1;
        indirect = true;
        continue;
      }
      if (address === Infinity) throw new RingError('descriptor address out of range', { head, address: table.getBigUint64(at, true).toString() });
      const writable = (flags & DESC_F_WRITE) !== 0;
      if (!writable && seenWritable) throw new RingError('device-readable descriptor after a device-writable one', { head });
      seenWritable ||= writable;
      segments.push({ address, length, writable });
      if (!(flags & DESC_F_NEXT)) return { head, segments };
      if (next >= entries) throw new RingError('descriptor next index outside its table', { head, next, entries });
      index = next;
    }
  }

  /** Returns a chain to the driver: used element first, then used->idx (the driver reads idx first). */
  pushUsed(head: number, written: number): void {
    const at = 4 + 8 * (this.usedIdx % this.size);
    this.used.setUint32(at, head, true);
    this.used.setUint32(at + 4, written, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.used.setUint16(2, this.usedIdx, true);
  }

  /** Whether the driver asked to be interrupted for what was pushed since the last signal. */
  shouldSignal(): boolean {
    this.fence();
    if (!this.eventIdx) return (this.avail.getUint16(0, true) & AVAIL_F_NO_INTERRUPT) === 0;
    const old = this.signalledUsed;
    const now = this.usedIdx;
    const valid = this.signalledValid;
    this.signalledUsed = now;
    this.signalledValid = true;
    if (!valid) return true;
    const usedEvent = this.avail.getUint16(4 + 2 * this.size, true);
    // vring_need_event: did used idx step past used_event since the last signal?
    return ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff);
  }

  /**
   * After taking what was there: tell the driver (avail_event) that the next entry should kick
   * us, then look again, since the driver may have added one without kicking. True if there is
   * more to take.
   */
  armKick(): boolean {
    if (this.eventIdx) this.used.setUint16(4 + 8 * this.size, this.lastAvail, true);
    this.fence();
    return this.pending() > 0;
  }
}
