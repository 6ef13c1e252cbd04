/**
 * The driver's side of a split virtqueue, built by hand in a buffer that plays guest memory: what
 * the ring and message suites feed the device code, well-formed or deliberately broken.
 */
import { GuestMemory } from '../../plugins/frontend-vhost/guest-memory.js';
import { ringBytes, type RingViews } from '../../plugins/frontend-vhost/split-ring.js';

export const F_NEXT = 1;
export const F_WRITE = 2;
export const F_INDIRECT = 4;
/** Where guest physical address 0 sits in the (pretend) front-end's address space. */
export const USER_BASE = 0x7f00_0000_0000n;

export interface Buffer {
  readonly address: number;
  readonly length: number;
  readonly write?: boolean;
}

export class GuestRing {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  private readonly view: DataView;
  private nextFree: number;
  private nextDesc = 0;
  private availIdx = 0;

  /** Rings at guest address `base` of `bytes` (all of guest memory); buffers are allocated after them. */
  constructor(readonly bytes: Uint8Array, readonly size: number, base = 0) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const need = ringBytes(size);
    this.desc = base;
    this.avail = base + need.desc;
    this.used = align(this.avail + need.avail, 4);
    this.nextFree = align(this.used + need.used, 4096);
  }

  memory(): GuestMemory {
    return GuestMemory.fromBuffers([{ guestAddress: 0, userAddress: USER_BASE, bytes: this.bytes }]);
  }

  views(): RingViews {
    const need = ringBytes(this.size);
    return {
      size: this.size,
      desc: this.bytes.subarray(this.desc, this.desc + need.desc),
      avail: this.bytes.subarray(this.avail, this.avail + need.avail),
      used: this.bytes.subarray(this.used, this.used + need.used),
    };
  }

  alloc(length: number, fill?: Uint8Array): number {
    const address = this.nextFree;
    this.nextFree = align(this.nextFree + length, 16);
    if (this.nextFree > this.bytes.length) throw new Error('guest-ring test memory exhausted');
    if (fill) this.bytes.set(fill, address);
    return address;
  }

  /** Writes descriptor i of a table at tableAddress (the ring's own table by default). */
  setDesc(i: number, address: number | bigint, length: number, flags: number, next: number, tableAddress = this.desc): void {
    const at = tableAddress + 16 * i;
    this.view.setBigUint64(at, BigInt(address), true);
    this.view.setUint32(at + 8, length, true);
    this.view.setUint16(at + 12, flags, true);
    this.view.setUint16(at + 14, next, true);
  }

  /** A chain of direct descriptors (consecutive slots); returns its head. */
  chain(buffers: readonly Buffer[]): number {
    const head = this.nextDesc;
    buffers.forEach((b, i) => {
      const slot = (head + i) % this.size;
      const last = i === buffers.length - 1;
      this.setDesc(slot, b.address, b.length, (b.write ? F_WRITE : 0) | (last ? 0 : F_NEXT), last ? 0 : (slot + 1) % this.size);
    });
    this.nextDesc = (head + buffers.length) % this.size;
    return head;
  }

  /** One ring descriptor pointing at an indirect table holding the buffers. */
  indirect(buffers: readonly Buffer[]): number {
    const table = this.alloc(16 * buffers.length);
    buffers.forEach((b, i) => {
      const last = i === buffers.length - 1;
      this.setDesc(i, b.address, b.length, (b.write ? F_WRITE : 0) | (last ? 0 : F_NEXT), last ? 0 : i + 1, table);
    });
    const head = this.nextDesc;
    this.setDesc(head, table, 16 * buffers.length, F_INDIRECT, 0);
    this.nextDesc = (head + 1) % this.size;
    return head;
  }

  publish(head: number): void {
    this.view.setUint16(this.avail + 4 + 2 * (this.availIdx % this.size), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.view.setUint16(this.avail + 2, this.availIdx, true);
  }

  /** Sets avail idx directly (to build a driver that ran ahead). */
  setAvailIdx(idx: number): void {
    this.availIdx = idx;
    this.view.setUint16(this.avail + 2, idx, true);
  }

  usedIdx(): number {
    return this.view.getUint16(this.used + 2, true);
  }

  usedElem(i: number): { id: number; len: number } {
    const at = this.used + 4 + 8 * (i % this.size);
    return { id: this.view.getUint32(at, true), len: this.view.getUint32(at + 4, true) };
  }

  setUsedEvent(idx: number): void {
    this.view.setUint16(this.avail + 4 + 2 * this.size, idx, true);
  }

  availEvent(): number {
    return this.view.getUint16(this.used + 4 + 8 * this.size, true);
  }

  /** A virtio-blk request header (type, sector) in guest memory. */
  header(type: number, sector: number): Buffer {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, type, true);
    view.setBigUint64(8, BigInt(sector), true);
    return { address: this.alloc(16, bytes), length: 16 };
  }

  status(): Buffer {
    const address = this.alloc(1, Uint8Array.of(0xff));
    return { address, length: 1, write: true };
  }
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
