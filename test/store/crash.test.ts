// @slow
/**
 * Crash test: a random workload of object writes, zeroes, discards and removes, log appends,
 * truncations, trims and removals, kv flushes and shard flushes runs on a FaultBdev that loses
 * power at a random operation (tearing writes half the time). The store is then reloaded and
 * checked against a model of everything that was acknowledged:
 *  - fsck: md pages, chains and masks agree;
 *  - every object page, size and existence is what the last completed flush left, or what a
 *    later acknowledged operation wrote (never anything else: no half-described blob);
 *  - every log is one lineage the model went through since that flush (a prefix of it when an
 *    append was torn), and keeps every record that flush made durable; on a store that writes its
 *    logs durably (the shard journal), since the log's last operation that settled;
 *  - the kv map is the last flushed state or one whose flush had started.
 *
 * FASTBLOCK_CRASH_SEEDS=N runs seeds 1..N (default 1000); FASTBLOCK_CRASH_SEED=S replays one.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FaultBdev } from '../../plugins/store-blobstore/bdev/fault-bdev.js';
import { MemoryBdev } from '../../plugins/store-blobstore/bdev/memory-bdev.js';
import { crc32c } from '../../plugins/store-blobstore/crc32c.js';
import { BlobShardStore } from '../../plugins/store-blobstore/shard-store.js';
import { pattern } from './devices.js';

const CLUSTER = 64 * 1024;
const DEVICE = 12 << 20;
const PAGE = 4096;
const PGS = ['1.0', '1.1', '1.2'];
const OBJECTS = ['o0', 'o1', 'o2', 'o3'];
const ZERO_PAGE = crc32c(new Uint8Array(PAGE));

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ObjectModel {
  bytes: Buffer;
}

interface LogEntry {
  readonly term: number;
  readonly type: number;
  readonly hash: number;
}

/**
 * A log as its lineage: every entry ever appended and not truncated away, by index (trims move
 * `first` but keep the lineage, since a trim that is not yet durable may come back undone).
 */
interface LogModel {
  first: number;
  last: number;
  full: (LogEntry | undefined)[];
}

class Model {
  readonly objects = new Map<string, ObjectModel>();
  readonly logs = new Map<string, LogModel>();
  kv = new Map<string, string>();

  // What may be on disk: the state at the last completed flush plus every state since.
  durableObjects = new Map<string, { size: number; pages: number[] } | undefined>();
  sinceObjects = new Map<string, { sizes: Set<number>; absent: boolean; pages: Map<number, Set<number>> }>();
  logStates = new Map<string, LogModel[]>();
  kvStates: string[] = [];
  kvDurable = '{}';

  static pageHashes(bytes: Buffer): number[] {
    const out: number[] = [];
    for (let p = 0; p * PAGE < bytes.length; p++) {
      const page = Buffer.alloc(PAGE);
      bytes.copy(page, 0, p * PAGE, Math.min(bytes.length, (p + 1) * PAGE));
      out.push(crc32c(page));
    }
    return out;
  }

  /** Records the current state of an object as one that may be on disk. */
  noteObject(key: string): void {
    let since = this.sinceObjects.get(key);
    if (since === undefined) this.sinceObjects.set(key, (since = { sizes: new Set(), absent: false, pages: new Map() }));
    const o = this.objects.get(key);
    if (o === undefined) {
      since.absent = true;
      return;
    }
    since.sizes.add(o.bytes.length);
    Model.pageHashes(o.bytes).forEach((h, p) => {
      let set = since!.pages.get(p);
      if (set === undefined) since!.pages.set(p, (set = new Set()));
      set.add(h);
    });
  }

  /** A log operation settled on a store that writes its logs durably: that state is the oldest the log may come back in. */
  logSettled(pg: string): void {
    this.logStates.delete(pg);
    this.noteLog(pg);
  }

  noteLog(pg: string): void {
    const log = this.logs.get(pg);
    const states = this.logStates.get(pg) ?? [];
    states.push(log === undefined ? { first: 1, last: 0, full: [] } : { first: log.first, last: log.last, full: log.full.slice(0, log.last + 1) });
    this.logStates.set(pg, states);
  }

  /** A flush completed: the current state is durable. */
  flushed(): void {
    this.durableObjects = new Map();
    for (const [k, o] of this.objects) this.durableObjects.set(k, { size: o.bytes.length, pages: Model.pageHashes(o.bytes) });
    this.sinceObjects = new Map();
    this.logStates = new Map();
    for (const pg of this.logs.keys()) this.noteLog(pg);
  }

  kvSnapshot(): string {
    return JSON.stringify([...this.kv].sort());
  }
}

const trace = process.env.FASTBLOCK_CRASH_DEBUG ? (...args: unknown[]) => console.log(...args) : () => undefined;

const tally = { seeds: 0, crashedMidway: 0, survivingPages: 0 };

async function runSeed(seed: number): Promise<void> {
  const rand = mulberry32(seed);
  const int = (n: number): number => Math.floor(rand() * n);
  const medium = new MemoryBdev(DEVICE);
  const crashAtOp = 10 + int(350);
  const fault = new FaultBdev(medium, { crashAtOp, tear: rand() < 0.5, random: rand });
  const model = new Model();
  let store: BlobShardStore;
  try {
    store = await BlobShardStore.openOn(fault, 0, { create: true, clusterSize: CLUSTER });
  } catch (err) {
    if (!fault.crashed) throw err;
    return;
  }
  model.flushed();
  model.kvStates = [model.kvSnapshot()];
  const terms = new Map<string, number>();

  // Each operation first records the state it leads to (an operation cut by the crash may have
  // partly reached the disk), then runs; NO_SPACE leaves the model as it was.
  const objectOp = async (pg: string, name: string): Promise<void> => {
    const key = `${pg}/${name}`;
    const kind = int(10);
    const offset = int(3) === 0 ? int((4 * CLUSTER) / PAGE) * PAGE : int(4 * CLUSTER);
    const length = 1 + (int(3) === 0 ? int(4) * PAGE + PAGE - 1 : int(12000));
    const before = model.objects.get(key);
    let next: ObjectModel | undefined;
    let run: () => Promise<void>;
    if (kind === 8 && (before === undefined || (offset === 0 && length >= before.bytes.length))) {
      // A discard leaves an absent object absent and releases one it covers entirely.
      run = () => store.objects.discard(pg, name, offset, length);
    } else if (kind < 9) {
      const bytes = Buffer.alloc(Math.max(before?.bytes.length ?? 0, offset + length));
      before?.bytes.copy(bytes);
      const data = kind < 6 ? pattern(seed * 1000 + int(1e6), length) : undefined;
      if (data !== undefined) data.copy(bytes, offset);
      else bytes.fill(0, offset, offset + length);
      next = { bytes };
      run = () =>
        data !== undefined
          ? store.objects.write(pg, name, offset, [data])
          : kind === 8
            ? store.objects.discard(pg, name, offset, length)
            : store.objects.writeZeroes(pg, name, offset, length);
    } else {
      run = () => store.objects.remove(pg, name);
    }
    if (next === undefined) {
      model.objects.delete(key);
    } else {
      // The store creates the object before writing: a flush in between (another PG's log growing)
      // makes it durable as it was, or empty.
      model.objects.set(key, before ?? { bytes: Buffer.alloc(0) });
      model.noteObject(key);
      model.objects.set(key, next);
    }
    model.noteObject(key);
    try {
      await run();
    } catch (err) {
      if ((err as { code?: string }).code !== 'NO_SPACE') throw err;
      // Nothing written; the object exists now (empty) if it did not.
      model.objects.set(key, before ?? { bytes: Buffer.alloc(0) });
      model.noteObject(key);
    }
    trace('object', kind, key, offset, length, fault.opCount, model.objects.get(key)?.bytes.length);
  };

  const logOp = async (pg: string): Promise<void> => {
    // The log's state at the last flush is one it may come back in, also when it did not exist yet.
    if (!model.logStates.has(pg)) model.noteLog(pg);
    const log = await store.diskLog(pg);
    const before = model.logs.get(pg) ?? { first: 1, last: 0, full: [] };
    const m: LogModel = { first: before.first, last: before.last, full: before.full.slice() };
    const kind = int(10);
    let run: () => Promise<void>;
    if (kind < 6) {
      const term = (terms.get(pg) ?? 1) + (int(8) === 0 ? 1 : 0);
      terms.set(pg, term);
      const batch = Array.from({ length: 1 + int(5) }, (_, i) => ({ index: log.lastIndex + 1 + i, term, type: int(3), data: pattern(seed * 7919 + int(1e6), 10 + int(6000)) }));
      for (const r of batch) m.full[r.index] = { term: r.term, type: r.type, hash: crc32c(r.data) };
      m.last = batch[batch.length - 1].index;
      run = () => log.append(batch);
    } else if (kind < 8) {
      const to = m.first + int(m.last - m.first + 3);
      if (to > m.first) {
        m.first = to;
        m.last = Math.max(m.last, to - 1);
      }
      run = () => log.trimPrefix(to);
    } else if (kind < 9 && m.last >= m.first) {
      const from = m.first + int(m.last - m.first + 1);
      m.full.length = from;
      m.last = from - 1;
      run = () => log.truncateSuffix(from);
    } else if (int(4) === 0) {
      m.first = 1;
      m.last = 0;
      m.full = [];
      run = () => store.removeDiskLog(pg);
    } else {
      return;
    }
    model.logs.set(pg, m);
    model.noteLog(pg);
    try {
      await run();
      if (store.durableLogWrites) model.logSettled(pg);
    } catch (err) {
      if ((err as { code?: string }).code !== 'NO_SPACE') throw err;
      model.logs.set(pg, before);
      model.noteLog(pg);
    }
    trace('log', kind, pg, m.first, m.last, fault.opCount);
  };

  try {
    for (let step = 0; step < 100 && !fault.crashed; step++) {
      const r = int(100);
      if (r < 70) {
        // A batch of concurrent operations on distinct objects and logs.
        const work: Promise<void>[] = [];
        const used = new Set<string>();
        for (let k = 1 + int(3); k > 0; k--) {
          const pg = PGS[int(PGS.length)];
          if (int(2) === 0) {
            const name = OBJECTS[int(OBJECTS.length)];
            if (used.has(`${pg}/${name}`)) continue;
            used.add(`${pg}/${name}`);
            work.push(objectOp(pg, name));
          } else {
            if (used.has(`log ${pg}`)) continue;
            used.add(`log ${pg}`);
            work.push(logOp(pg));
          }
        }
        await Promise.all(work);
      } else if (r < 82) {
        for (let k = int(4); k >= 0; k--) {
          const key = `k${int(6)}`;
          if (int(4) === 0) {
            store.kv.delete(key);
            model.kv.delete(key);
          } else {
            const value = `v${seed}-${step}-${k}`.repeat(1 + int(50));
            store.kv.set(key, new TextEncoder().encode(value));
            model.kv.set(key, value);
          }
        }
        model.kvStates.push(model.kvSnapshot());
        trace('kv flush start', fault.opCount);
        await store.kv.flush();
        trace('kv flush done', fault.opCount);
        model.kvDurable = model.kvSnapshot();
        model.kvStates = [model.kvDurable];
        model.flushed();
      } else {
        trace('flush start', fault.opCount);
        await store.flush();
        trace('flush done', fault.opCount);
        model.flushed();
      }
    }
  } catch (err) {
    if (!fault.crashed) throw err;
  }
  tally.seeds++;
  if (fault.crashed) tally.crashedMidway++;
  if (process.env.FASTBLOCK_CRASH_DEBUG) {
    for (const id of store.blobstore.blobIds()) {
      const b = store.blobstore.openBlob(id);
      console.log('before crash: blob', id, new TextDecoder().decode(b.getXattr('kind')), new TextDecoder().decode(b.getXattr('pg') ?? new Uint8Array()), new TextDecoder().decode(b.getXattr('name') ?? new Uint8Array()), Array.from({ length: b.clusterCount }, (_, i) => b.clusterAt(i)).join(','));
    }
  }
  if (process.env.FASTBLOCK_CRASH_DEBUG) {
    const probe = Buffer.alloc(4096);
    await medium.read(466 * 4096, probe);
    console.log('medium page 466 before crash()', probe[0], probe[100]);
  }
  fault.crash();
  tally.survivingPages += fault.survivedPages;

  const reloaded = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false, clusterSize: CLUSTER });
  if (process.env.FASTBLOCK_CRASH_DEBUG) {
    for (const id of reloaded.blobstore.blobIds()) {
      const b = reloaded.blobstore.openBlob(id);
      console.log('reloaded: blob', id, new TextDecoder().decode(b.getXattr('kind')), new TextDecoder().decode(b.getXattr('pg') ?? new Uint8Array()), new TextDecoder().decode(b.getXattr('name') ?? new Uint8Array()), Array.from({ length: b.clusterCount }, (_, i) => b.clusterAt(i)).join(','));
    }
  }
  const report = await reloaded.blobstore.fsck();
  assert.ok(report.ok, `fsck: ${report.errors.join('; ')}`);
  assert.is(reloaded.damaged.size, 0, 'no damaged blob');

  // Objects.
  const keys = new Set([...model.durableObjects.keys(), ...model.sinceObjects.keys()]);
  for (const pg of PGS) for (const name of await reloaded.objects.list(pg)) keys.add(`${pg}/${name}`);
  for (const key of keys) {
    const [pg, name] = key.split('/');
    const durable = model.durableObjects.get(key);
    const since = model.sinceObjects.get(key);
    const stat = await reloaded.objects.stat(pg, name);
    if (stat === undefined) {
      assert.ok(durable === undefined || since?.absent, `object ${key} lost`);
      continue;
    }
    const sizes = new Set(since?.sizes ?? []);
    if (durable !== undefined) sizes.add(durable.size);
    assert.ok(sizes.has(stat.size), `object ${key} size ${stat.size} not in ${[...sizes]}`);
    const bytes = Buffer.from(await reloaded.objects.read(pg, name, 0, Math.ceil(stat.size / PAGE) * PAGE));
    const hashes = Model.pageHashes(bytes);
    if (process.env.FASTBLOCK_CRASH_DEBUG && model.objects.get(key)) {
      const mb = model.objects.get(key)!.bytes;
      for (let i = 0; i < Math.min(mb.length, bytes.length); i++) if (mb[i] !== bytes[i]) { console.log('first diff', key, i, mb[i], bytes[i], 'model len', mb.length, 'stat', stat.size); break; }
    }
    hashes.forEach((h, p) => {
      const allowed = new Set(since?.pages.get(p) ?? []);
      allowed.add(durable?.pages[p] ?? ZERO_PAGE);
      if (durable === undefined || since?.absent || p >= (durable?.pages.length ?? 0)) allowed.add(ZERO_PAGE);
      assert.ok(allowed.has(h), `object ${key} page ${p} holds bytes no acknowledged state had`);
    });
  }

  // Logs.
  for (const pg of PGS) {
    const states = model.logStates.get(pg) ?? [{ first: 1, last: 0, full: [] }];
    const log = await reloaded.diskLog(pg);
    const records = log.lastIndex >= log.firstIndex ? await log.read(log.firstIndex, log.lastIndex + 1) : [];
    const durableLast = Math.min(...states.map((s) => s.last));
    if (process.env.FASTBLOCK_CRASH_DEBUG) console.log(pg, JSON.stringify(states.map((s) => [s.first, s.last])), log.firstIndex, log.lastIndex, fault.opCount);
    assert.ok(log.lastIndex >= durableLast, `log ${pg} lost records: last ${log.lastIndex} < ${durableLast}`);
    const firsts = states.map((s) => s.first);
    assert.ok(log.firstIndex >= Math.min(...firsts) && log.firstIndex <= Math.max(...firsts), `log ${pg} starts at ${log.firstIndex}, outside ${firsts}`);
    const matches = states.some((s) =>
      records.every((r) => {
        const e = s.full[r.index];
        return e !== undefined && e.term === r.term && e.type === r.type && e.hash === crc32c(r.data);
      }),
    );
    assert.ok(matches, `log ${pg} [${log.firstIndex}, ${log.lastIndex}] is no lineage the model went through since the last flush`);
  }

  // kv.
  const kv = JSON.stringify(reloaded.kv.keys().map((k) => [k, new TextDecoder().decode(reloaded.kv.get(k))]));
  assert.ok(model.kvStates.includes(kv) || kv === model.kvDurable, `kv state ${kv.slice(0, 80)} was never flushed`);

  // A clean close writes the masks; the clean load must agree with them.
  await reloaded.close();
  const clean = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
  const cleanReport = await clean.blobstore.fsck();
  assert.ok(cleanReport.ok, `fsck after clean reload: ${cleanReport.errors.join('; ')}`);
  await clean.close();
}

const only = process.env.FASTBLOCK_CRASH_SEED;
const seeds = only !== undefined ? [Number(only)] : Array.from({ length: Number(process.env.FASTBLOCK_CRASH_SEEDS ?? 1000) }, (_, i) => i + 1);

test(`crash at a random point, reload, check (${seeds.length} seeds)`, async () => {
  for (const seed of seeds) {
    try {
      await runSeed(seed);
    } catch (err) {
      console.log(`crash seed ${seed} failed; replay: FASTBLOCK_CRASH_SEED=${seed} node --import tsx test/store/crash.test.ts`);
      throw err;
    }
  }
  console.log(`crash test: ${tally.seeds} seeds, ${tally.crashedMidway} crashed mid-workload, ${tally.survivingPages} unflushed pages survived tearing`);
  assert.ok(seeds.length < 100 || tally.crashedMidway > seeds.length / 2, 'most crashes hit a running workload');
});

test.run();
