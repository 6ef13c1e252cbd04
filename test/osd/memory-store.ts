/**
 * Test doubles below the OSD for unit-level suites: a ShardStore whose objects live in memory,
 * and raft storage in memory. Not durable; the cluster suites use the blobstore plugin.
 */
import type { DiskLog, KvStore, ObjectChunk, ObjectStat, ObjectStore, PgId, ShardStore, ShardStoreStats } from '../../kernel/contracts/store.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { MemoryStorage, type Membership } from '../../kernel/raft/index.js';
import type { RaftStorageProvider } from '../../services/osd/shard.js';

class MemoryObjects implements ObjectStore {
  readonly pgs = new Map<PgId, Map<string, Uint8Array>>();

  private objects(pg: PgId): Map<string, Uint8Array> {
    let objects = this.pgs.get(pg);
    if (!objects) this.pgs.set(pg, (objects = new Map()));
    return objects;
  }

  private grow(pg: PgId, object: string, size: number): Uint8Array {
    const objects = this.objects(pg);
    const old = objects.get(object) ?? new Uint8Array(0);
    if (old.length >= size) return old;
    const grown = new Uint8Array(size);
    grown.set(old);
    objects.set(object, grown);
    return grown;
  }

  async read(pg: PgId, object: string, offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    const bytes = this.pgs.get(pg)?.get(object);
    if (bytes && offset < bytes.length) out.set(bytes.subarray(offset, Math.min(bytes.length, offset + length)));
    return out;
  }
  async write(pg: PgId, object: string, offset: number, data: readonly Uint8Array[]): Promise<void> {
    const length = data.reduce((n, d) => n + d.length, 0);
    const bytes = this.grow(pg, object, offset + length);
    let at = offset;
    for (const d of data) {
      bytes.set(d, at);
      at += d.length;
    }
  }
  overwrites(pg: PgId, object: string, offset: number, length: number): boolean {
    const bytes = this.pgs.get(pg)?.get(object);
    return bytes !== undefined && length > 0 && offset + length <= bytes.length;
  }
  async discard(pg: PgId, object: string, offset: number, length: number): Promise<void> {
    await this.writeZeroes(pg, object, offset, length);
  }
  async writeZeroes(pg: PgId, object: string, offset: number, length: number): Promise<void> {
    this.grow(pg, object, offset + length).fill(0, offset, offset + length);
  }
  async stat(pg: PgId, object: string): Promise<ObjectStat | undefined> {
    const bytes = this.pgs.get(pg)?.get(object);
    return bytes ? { size: bytes.length } : undefined;
  }
  async remove(pg: PgId, object: string): Promise<void> {
    this.pgs.get(pg)?.delete(object);
  }
  async list(pg: PgId): Promise<string[]> {
    return [...(this.pgs.get(pg)?.keys() ?? [])].sort();
  }
  async *exportPg(pg: PgId, chunkBytes: number): AsyncIterable<ObjectChunk> {
    for (const [object, bytes] of [...(this.pgs.get(pg) ?? new Map<string, Uint8Array>())]) {
      if (bytes.length === 0) yield { object, offset: 0, data: new Uint8Array(0), size: 0 };
      for (let at = 0; at < bytes.length; at += chunkBytes) yield { object, offset: at, data: bytes.slice(at, at + chunkBytes), size: bytes.length };
    }
  }
  async importPg(pg: PgId, chunks: AsyncIterable<ObjectChunk>): Promise<void> {
    this.pgs.delete(pg);
    for await (const chunk of chunks) {
      const bytes = this.grow(pg, chunk.object, chunk.size);
      bytes.set(chunk.data, chunk.offset);
    }
  }
  async removePg(pg: PgId): Promise<void> {
    this.pgs.delete(pg);
  }
}

class MemoryKv implements KvStore {
  private readonly map = new Map<string, Uint8Array>();
  get(key: string) {
    return this.map.get(key);
  }
  set(key: string, value: Uint8Array) {
    this.map.set(key, value);
  }
  delete(key: string) {
    this.map.delete(key);
  }
  keys(prefix = '') {
    return [...this.map.keys()].filter((k) => k.startsWith(prefix));
  }
  async flush() {}
}

export class MemoryShardStore implements ShardStore {
  readonly objects = new MemoryObjects();
  readonly kv = new MemoryKv();
  flushes = 0;
  constructor(readonly shard = 0) {}
  async diskLog(): Promise<DiskLog> {
    throw new FastblockError(ErrorCode.INTERNAL, 'the memory store keeps no disk logs', {});
  }
  async removeDiskLog(): Promise<void> {}
  async flush(): Promise<void> {
    this.flushes++;
  }
  stats(): ShardStoreStats {
    return { capacityBytes: 1 << 30, usedBytes: 0 };
  }
  async close(): Promise<void> {}
}

export class MemoryRaftStorage implements RaftStorageProvider {
  private readonly groups = new Map<PgId, MemoryStorage>();
  has(pg: PgId): boolean {
    return this.groups.has(pg);
  }
  async open(pg: PgId, membership: Membership) {
    let storage = this.groups.get(pg);
    if (!storage) this.groups.set(pg, (storage = new MemoryStorage(membership)));
    return { storage, applied: 0 };
  }
  async remove(pg: PgId): Promise<void> {
    this.groups.delete(pg);
  }
  async flush(): Promise<void> {}
  checkpoint(): void {}
  restored(): void {}
  heldBytes(): number {
    return 0;
  }
}
