/**
 * The inflight region of one split queue (vhost-user "Inflight I/O tracking"): shared memory the
 * back-end allocates and the front-end keeps across back-end restarts. It records which heads were
 * taken and not yet completed, so a restarted back-end resubmits them instead of losing them.
 *
 * Layout per queue: u64 features, u16 version, u16 desc_num, u16 last_batch_head, u16 used_idx, then
 * desc_num entries of { u8 inflight, u8 pad[5], u16 next, u64 counter }.
 */
const HEADER = 16;
const ENTRY = 16;

/** Bytes one queue's region takes (64-byte aligned so queues do not share cache lines). */
export function inflightQueueBytes(queueSize: number): number {
  return Math.ceil((HEADER + ENTRY * queueSize) / 64) * 64;
}

export class InflightQueue {
  private readonly view: DataView;
  /**
   * The newest take's counter. A number, not a BigInt (one allocation per request): it cannot
   * reach 2^53 (285 years at a million requests a second).
   */
  private counter = 0;

  constructor(bytes: Uint8Array, readonly queueSize: number) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, inflightQueueBytes(queueSize));
    if (this.view.getUint16(8, true) === 0) {
      this.view.setUint16(8, 1, true); // version
      this.view.setUint16(10, queueSize, true);
    }
    for (let head = 0; head < queueSize; head++) {
      const c = this.view.getBigUint64(HEADER + ENTRY * head + 8, true);
      if (Number(c) > this.counter) this.counter = Number(c);
    }
  }

  /** A head was taken from the avail ring: record it before anything else happens to it. */
  take(head: number): void {
    const at = HEADER + ENTRY * head;
    this.counter++;
    this.view.setUint32(at + 8, this.counter % 2 ** 32, true);
    this.view.setUint32(at + 12, Math.floor(this.counter / 2 ** 32), true);
    this.view.setUint8(at, 1);
  }

  /** Called around a used-ring update, in the order the protocol prescribes. */
  beforeUsed(head: number): void {
    this.view.setUint16(12, head, true); // last_batch_head
  }

  afterUsed(head: number, usedIdx: number): void {
    this.view.setUint8(HEADER + ENTRY * head, 0);
    this.view.setUint16(14, usedIdx, true);
  }

  /**
   * After a restart: settles a completion that reached the used ring but not this record, then
   * returns the heads still in flight, oldest first.
   */
  recover(usedIdxInMemory: number): number[] {
    if (this.view.getUint16(14, true) !== usedIdxInMemory) {
      this.view.setUint8(HEADER + ENTRY * this.view.getUint16(12, true), 0);
      this.view.setUint16(14, usedIdxInMemory, true);
    }
    const heads: { head: number; counter: bigint }[] = [];
    for (let head = 0; head < this.queueSize; head++) {
      const at = HEADER + ENTRY * head;
      if (this.view.getUint8(at) === 1) heads.push({ head, counter: this.view.getBigUint64(at + 8, true) });
    }
    heads.sort((a, b) => (a.counter < b.counter ? -1 : a.counter > b.counter ? 1 : 0));
    return heads.map((h) => h.head);
  }
}
