/**
 * MetaStore in one local file, for a single monitor (vstart, trying things out).
 *
 * Every transaction rewrites the whole state: write a temporary file, fsync it, rename it over the
 * old one, fsync the directory. A crash at any instant leaves either the old file or the new one;
 * the file also carries a SHA-256 of its body, so a file damaged some other way is refused on load
 * instead of being half-believed. Transactions are serialized; one resolves only once durable.
 */
import { createHash } from 'node:crypto';
import { open, readFile, rename, mkdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { MetaCompare, MetaEntry, MetaEvent, MetaLeadership, MetaOp, MetaStore, MetaTxnResult } from '../../../kernel/contracts/index.js';
import { ErrorCode, FastblockError } from '../../../kernel/errors.js';
import { WatchHub } from './watch-hub.js';

const FORMAT = 'fastblock-meta/1';

interface FileBody {
  readonly format: string;
  readonly revision: number;
  /** [key, base64 value, modRevision] */
  readonly entries: [string, string, number][];
}

export class EmbeddedMetaStore implements MetaStore {
  readonly kind = 'embedded';
  private readonly entries = new Map<string, MetaEntry>();
  private revision = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly hub = new WatchHub();
  private closed = false;

  /** No I/O here: load() reads the file (open() does both). */
  constructor(readonly path: string) {}

  static async open(path: string): Promise<EmbeddedMetaStore> {
    const store = new EmbeddedMetaStore(path);
    await store.load();
    return store;
  }

  async load(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    await unlink(`${this.path}.tmp`).catch(() => undefined);
    let text: string | undefined;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== undefined) this.parse(text);
  }

  private parse(text: string): void {
    const newline = text.indexOf('\n');
    const sum = text.slice(0, newline);
    const body = text.slice(newline + 1);
    if (newline < 0 || createHash('sha256').update(body).digest('hex') !== sum) {
      throw new FastblockError(ErrorCode.CORRUPT, `meta store file ${this.path} fails its checksum; restore it from a backup`, { path: this.path });
    }
    const parsed = JSON.parse(body) as FileBody;
    if (parsed.format !== FORMAT) throw new FastblockError(ErrorCode.CORRUPT, `meta store file ${this.path} has format ${parsed.format}`, { path: this.path });
    this.revision = parsed.revision;
    for (const [key, value, modRevision] of parsed.entries) this.entries.set(key, { key, value: Buffer.from(value, 'base64'), modRevision });
  }

  private async persist(): Promise<void> {
    const body: FileBody = {
      format: FORMAT,
      revision: this.revision,
      entries: [...this.entries.values()].map((e) => [e.key, Buffer.from(e.value).toString('base64'), e.modRevision]),
    };
    const json = JSON.stringify(body);
    const text = `${createHash('sha256').update(json).digest('hex')}\n${json}`;
    const tmp = `${this.path}.tmp`;
    const file = await open(tmp, 'w');
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.path);
    const dir = await open(dirname(this.path) || '.', 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, 'meta store is closed', { path: this.path });
  }

  async get(key: string): Promise<MetaEntry | undefined> {
    this.checkOpen();
    return this.entries.get(key);
  }

  async list(prefix: string): Promise<MetaEntry[]> {
    this.checkOpen();
    return [...this.entries.values()].filter((e) => e.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  txn(compares: readonly MetaCompare[], ops: readonly MetaOp[]): Promise<MetaTxnResult> {
    const run = this.queue.then(() => this.apply(compares, ops));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async apply(compares: readonly MetaCompare[], ops: readonly MetaOp[]): Promise<MetaTxnResult> {
    this.checkOpen();
    for (const c of compares) {
      if ((this.entries.get(c.key)?.modRevision ?? 0) !== c.modRevision) return { succeeded: false, revision: this.revision };
    }
    if (ops.length === 0) return { succeeded: true, revision: this.revision };
    const revision = this.revision + 1;
    const before = new Map(this.entries);
    const events: MetaEvent[] = [];
    for (const op of ops) {
      if (op.type === 'put') {
        const entry = { key: op.key, value: Uint8Array.from(op.value), modRevision: revision };
        this.entries.set(op.key, entry);
        events.push({ type: 'put', entry });
      } else {
        const keys = op.type === 'delete' ? [op.key] : [...this.entries.keys()].filter((k) => k.startsWith(op.prefix));
        for (const key of keys) {
          if (this.entries.delete(key)) events.push({ type: 'delete', key, modRevision: revision });
        }
      }
    }
    this.revision = revision;
    try {
      await this.persist();
    } catch (err) {
      // Not durable: the transaction did not happen.
      this.entries.clear();
      for (const [k, v] of before) this.entries.set(k, v);
      this.revision = revision - 1;
      throw new FastblockError(ErrorCode.IO_ERROR, `meta store write failed: ${(err as Error).message}`, { path: this.path }, { cause: err });
    }
    this.hub.publish(revision, events);
    return { succeeded: true, revision };
  }

  watch(prefix: string, fromRevision: number, listener: (events: readonly MetaEvent[]) => void): () => void {
    this.checkOpen();
    return this.hub.watch(prefix, fromRevision, listener);
  }

  /** One monitor per file: it is always the leader. */
  async campaign(_election: string, _candidateId: string): Promise<MetaLeadership> {
    this.checkOpen();
    return { isLeader: true, onLost: () => undefined, resign: async () => undefined };
  }

  async close(): Promise<void> {
    await this.queue;
    this.closed = true;
  }
}

export function embeddedStorePath(dataDir: string): string {
  return join(dataDir, 'monitor-meta.json');
}
