/**
 * kv_store: the shard's small metadata, a map in memory persisted whole, atomically.
 *
 * The blob holds two header pages (slots A and B) and payloads after them. A flush serializes the
 * map, writes it where it overlaps neither the newest durable payload nor its header, writes the
 * older slot's header naming it (generation + 1, the payload's length and CRC32C), and flushes the
 * shard. On open the intact header with the highest generation whose payload matches its CRC
 * wins: a torn or lost flush leaves the previous state.
 *
 *   header: "FBKV0001", u32 generation, u32 payload CRC32C, u64 payload offset, u64 payload length
 *   payload: u32 entries, then per entry u32 key length, key (UTF-8), u32 value length, value
 */
import { FastblockError, ErrorCode } from '../../kernel/errors.js';
import type { KvStore } from '../../kernel/contracts/store.js';
import { PAGE, bufferPool } from './bdev/aligned-memory.js';
import type { Blob } from './blobstore/blob.js';
import { pageIntact, readU64, sealPage, viewOf, writeU64 } from './blobstore/layout.js';
import { crc32c } from './crc32c.js';

const MAGIC = 'FBKV0001';
const PAYLOAD_START = 2 * PAGE;

interface Slot {
  readonly generation: number;
  readonly offset: number;
  readonly length: number;
  readonly crc: number;
}

const ceilPage = (x: number): number => Math.ceil(x / PAGE) * PAGE;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encodeSlot(slot: Slot, page: Uint8Array): void {
  page.fill(0);
  const view = viewOf(page);
  page.set(encoder.encode(MAGIC), 0);
  view.setUint32(8, slot.generation, true);
  view.setUint32(12, slot.crc, true);
  writeU64(view, 16, slot.offset);
  writeU64(view, 24, slot.length);
  sealPage(page);
}

function decodeSlot(page: Uint8Array): Slot | undefined {
  if (decoder.decode(page.subarray(0, 8)) !== MAGIC || !pageIntact(page)) return undefined;
  const view = viewOf(page);
  return { generation: view.getUint32(8, true), crc: view.getUint32(12, true), offset: readU64(view, 16), length: readU64(view, 24) };
}

export class BlobKvStore implements KvStore {
  private readonly map = new Map<string, Uint8Array>();
  /** The newest durable state and the slot (0 or 1) that names it. */
  private current: Slot | undefined;
  private currentSlot = 1;
  private queue: Promise<void> = Promise.resolve();

  private constructor(
    readonly blob: Blob,
    private readonly flushShard: () => Promise<void>,
  ) {}

  static create(blob: Blob, flushShard: () => Promise<void>): BlobKvStore {
    blob.resize(1);
    return new BlobKvStore(blob, flushShard);
  }

  static async open(blob: Blob, flushShard: () => Promise<void>): Promise<BlobKvStore> {
    const kv = new BlobKvStore(blob, flushShard);
    const headers = Buffer.alloc(2 * PAGE);
    await blob.read(0, headers);
    const slots = [decodeSlot(headers.subarray(0, PAGE)), decodeSlot(headers.subarray(PAGE))];
    const order = [0, 1].filter((i) => slots[i] !== undefined).sort((a, b) => slots[b]!.generation - slots[a]!.generation);
    for (const i of order) {
      const slot = slots[i]!;
      if (slot.offset + slot.length > blob.sizeBytes || slot.offset < PAYLOAD_START) continue;
      const payload = Buffer.alloc(ceilPage(slot.length) || PAGE);
      await blob.read(slot.offset, payload);
      if (crc32c(payload.subarray(0, slot.length)) !== slot.crc) continue;
      kv.load(payload.subarray(0, slot.length));
      kv.current = slot;
      kv.currentSlot = i;
      return kv;
    }
    if (slots.some((s) => s !== undefined)) {
      throw new FastblockError(ErrorCode.CORRUPT, 'kv store: no intact state', { blobId: blob.id });
    }
    return kv;
  }

  get(key: string): Uint8Array | undefined {
    return this.map.get(key);
  }

  set(key: string, value: Uint8Array): void {
    this.map.set(key, value.slice());
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  keys(prefix = ''): string[] {
    const out: string[] = [];
    for (const k of this.map.keys()) if (k.startsWith(prefix)) out.push(k);
    return out.sort();
  }

  flush(): Promise<void> {
    const run = this.queue.then(() => this.flushNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async flushNow(): Promise<void> {
    const payload = this.serialize();
    const cur = this.current;
    let offset = PAYLOAD_START;
    if (cur !== undefined && offset + payload.length > cur.offset) offset = ceilPage(cur.offset + cur.length);
    const end = ceilPage(offset + payload.length);
    const cs = this.blob.sizeBytes / Math.max(1, this.blob.clusterCount);
    if (end > this.blob.sizeBytes) this.blob.resize(Math.ceil(end / cs));
    const slotIndex = 1 - this.currentSlot;
    const slot: Slot = { generation: ((cur?.generation ?? 0) + 1) >>> 0, offset, length: payload.length, crc: crc32c(payload) };
    const header = bufferPool.acquire(PAGE);
    const padded = bufferPool.acquire(end - offset);
    try {
      padded.set(payload);
      padded.fill(0, payload.length);
      encodeSlot(slot, header);
      await Promise.all([this.blob.write(offset, padded.subarray(0, end - offset)), this.blob.write(slotIndex * PAGE, header)]);
    } finally {
      bufferPool.release(header);
      bufferPool.release(padded);
    }
    await this.flushShard();
    this.current = slot;
    this.currentSlot = slotIndex;
  }

  private serialize(): Buffer {
    const entries = [...this.map].map(([k, v]) => [encoder.encode(k), v] as const);
    let size = 4;
    for (const [k, v] of entries) size += 8 + k.length + v.length;
    const out = Buffer.alloc(size);
    const view = viewOf(out);
    view.setUint32(0, entries.length, true);
    let at = 4;
    for (const [k, v] of entries) {
      view.setUint32(at, k.length, true);
      out.set(k, at + 4);
      at += 4 + k.length;
      view.setUint32(at, v.length, true);
      out.set(v, at + 4);
      at += 4 + v.length;
    }
    return out;
  }

  private load(payload: Uint8Array): void {
    const view = viewOf(payload);
    const count = view.getUint32(0, true);
    let at = 4;
    for (let i = 0; i < count; i++) {
      const kl = view.getUint32(at, true);
      const key = decoder.decode(payload.subarray(at + 4, at + 4 + kl));
      at += 4 + kl;
      const vl = view.getUint32(at, true);
      this.map.set(key, payload.slice(at + 4, at + 4 + vl));
      at += 4 + vl;
    }
  }
}
