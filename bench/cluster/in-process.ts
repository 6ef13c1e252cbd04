/**
 * The OSD data path's CPU per write, without the machine's scheduling in the figure: three OSD
 * shards (blobstore on files, durable raft storage, 64 PGs of size 3; or one, --replicas 1) and the client library in
 * one thread, over TCP loopback. A development measure beside bench/cluster, whose figures move
 * with how the 2 shared cores are split between five processes: here nothing waits for another
 * process to be scheduled, so CPU ms per write (user + sys of this process, the client's share
 * included) compares two versions of the code fairly. Run both versions at once to compare them
 * under the same load.
 *
 *   node --import tsx bench/cluster/in-process.ts [--seconds 8] [--jobs 4k:32,4k:1,128k:8] [--replicas 3|1] [--profile DIR]
 *
 * A job `wm4k:QD` issues Image.writeMany calls instead, each of 16 random 4 KiB blocks of one
 * random object (one WRITE_EXTENTS request): what a write-back cache's write-back sends. Its
 * figures are per 4 KiB block, to compare with the 4k job's per write.
 *
 * Prints one line per job, with what each write cost the shards together: raft rounds,
 * storage flushes (those that reached the device: blobstore flush rounds) and node messages.
 * --profile writes a V8 CPU profile and an allocation profile (sampled, garbage included) of each
 * job (not of the setup or the precondition) to DIR.
 * Not a target benchmark (no baseline, no JSON line).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { pino } from 'pino';
import { ClusterClient } from '../../client/cluster-client.js';
import type { Image } from '../../client/image.js';
import { StaticMapSource } from '../../client/map-source.js';
import type { ClusterMap } from '../../kernel/contracts/cluster-map.js';
import { BlobShardStore } from '../../plugins/store-blobstore/shard-store.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { DiskRaftStorage } from '../../services/osd/disk-raft-storage.js';
import { Shard } from '../../services/osd/shard.js';

const opts = new Command()
  .option('--seconds <s>', 'seconds per job', '8')
  .option('--jobs <list>', 'block size:queue depth, comma-separated (128k and larger run sequentially)', '4k:32,4k:1,128k:8')
  .option('--profile <dir>', 'write a CPU profile of each job to this directory')
  .option('--replicas <n>', 'OSDs and pool size: 3, or 1 (the 1-replica image of bench/vhost)', '3')
  .parse()
  .opts<{ seconds: string; jobs: string; profile?: string; replicas: string }>();
const REPLICAS = Number(opts.replicas);
if (REPLICAS !== 1 && REPLICAS !== 3) throw new Error(`--replicas ${opts.replicas}: 1 or 3`);

const MiB = 1 << 20;
const PGS = 64;
const SPAN = 128 * MiB;
/** Blocks per writeMany call of a wm job. */
const WRITE_MANY_BLOCKS = 16;
const logger = pino({ level: 'warn' });

interface Node {
  readonly transport: TcpTransport;
  readonly store: BlobShardStore;
  readonly shard: Shard;
  readonly port: number;
}

/** Rounds, device flushes and node messages of the shards together. */
function counters(nodes: readonly Node[]): { rounds: number; flushes: number; messages: number } {
  let rounds = 0;
  let flushes = 0;
  let messages = 0;
  for (const n of nodes) {
    rounds += n.shard.raftStats.rounds;
    flushes += n.store.blobstore.flushRounds;
    messages += n.shard.raftStats.nodeMessagesSent;
  }
  return { rounds, flushes, messages };
}

/** A job: random writes for `seconds`, or sequential ones, for `seconds` or once over the span (`seconds` undefined). */
async function run(nodes: readonly Node[], image: Image, label: string, bs: number, qd: number, seconds: number | undefined, sequential: boolean, perCall = 1): Promise<void> {
  const block = new Uint8Array(bs).fill(7);
  const objectBlocks = image.writeGroupBytes / bs;
  /** perCall distinct random blocks of one random object, as writeMany's writes. */
  const manyWrites = () => {
    const base = Math.floor(Math.random() * (SPAN / image.writeGroupBytes)) * image.writeGroupBytes;
    const picked = new Set<number>();
    while (picked.size < perCall) picked.add(Math.floor(Math.random() * objectBlocks));
    return [...picked].map((i) => ({ offset: base + i * bs, data: [block] }));
  };
  let ops = 0;
  let next = 0;
  let issued = 0;
  const more = seconds === undefined ? () => issued * bs < SPAN : () => Date.now() < deadline;
  const session = opts.profile && label !== 'precondition' ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    // Every allocation site, garbage included: what the young generation churns through.
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }
  const deadline = Date.now() + (seconds ?? 0) * 1000;
  const before = counters(nodes);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: qd }, async () => {
      while (more()) {
        if (perCall > 1) {
          issued += perCall;
          await image.writeMany(manyWrites());
          ops += perCall;
          continue;
        }
        issued++;
        const offset = sequential ? next : Math.floor(Math.random() * (SPAN / bs)) * bs;
        next = (next + bs) % SPAN;
        await image.write(offset, [block]);
        ops++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  const wall = (performance.now() - t0) / 1000;
  const after = counters(nodes);
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    const { profile: heap } = await session.post('HeapProfiler.stopSampling');
    session.disconnect();
    mkdirSync(opts.profile!, { recursive: true });
    const name = label.replace(/\s+/g, '-');
    writeFileSync(join(opts.profile!, `${name}.cpuprofile`), JSON.stringify(profile));
    writeFileSync(join(opts.profile!, `${name}.heapprofile`), JSON.stringify(heap));
  }
  const perOp = (us: number) => (us / 1000 / ops).toFixed(3);
  const per = (a: number, b: number) => ((a - b) / ops).toFixed(2);
  console.log(
    `${label.padEnd(12)} ${String(ops).padStart(7)} writes ${(ops / wall).toFixed(0).padStart(6)} IOPS  cpu ms/write ${perOp(cpu.user + cpu.system)} (user ${perOp(cpu.user)}, sys ${perOp(cpu.system)})  ${((cpu.user + cpu.system) / 1e6 / wall).toFixed(2)} cores` +
      `  per write: ${per(after.rounds, before.rounds)} rounds, ${per(after.flushes, before.flushes)} flushes, ${per(after.messages, before.messages)} node messages`,
  );
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-in-process-'));
  const nodes: Node[] = [];
  try {
    for (let osd = 0; osd < REPLICAS; osd++) {
      const transport = new TcpTransport({ source: `osd.${osd}` }, logger);
      const store = await BlobShardStore.open({ shard: 0, path: join(dir, `osd${osd}.blob`), sizeBytes: 1024 * MiB, create: true, logger });
      const shard = new Shard({ osd, shard: 0, listen: { host: '127.0.0.1', port: 0 }, transport, store, raftStorage: new DiskRaftStorage(store), logger });
      nodes.push({ transport, store, shard, port: (await shard.start()).port });
    }
    const map: ClusterMap = {
      epoch: 1,
      osds: nodes.map((n, id) => ({ id, address: { host: '127.0.0.1', port: n.port }, shards: 1, host: `h${id}`, failureDomain: `h${id}`, weight: 1, up: true, in: true, lastHeartbeatMs: 0 })),
      pools: [{ id: 1, name: 'rbd', size: REPLICAS, minSize: Math.min(2, REPLICAS), pgNum: PGS, failureDomain: 'host' }],
      pgs: Array.from({ length: PGS }, (_, index) => ({ pool: 1, index, epoch: 1, replicas: Array.from({ length: REPLICAS }, (_, k) => ({ osd: (index + k) % REPLICAS, shard: 0 })) })),
      images: [{ id: 'img', pool: 1, name: 'disk', sizeBytes: SPAN, objectSizeBytes: 4 * MiB, createdMs: 0 }],
      policies: [],
    };
    for (const n of nodes) n.shard.setMap(map);
    const transport = new TcpTransport({ source: 'bench' }, logger);
    const client = new ClusterClient(transport, new StaticMapSource(map), { retry: { opTimeoutMs: 60_000, attemptTimeoutMs: 5000 } });
    try {
      const image = await client.openImage('rbd/disk');
      // As fio's precondition: the whole span is written once, so random writes land in objects
      // (and clusters) that exist, as in bench/cluster.
      await run(nodes, image, 'precondition', MiB, 8, undefined, true);
      for (const job of opts.jobs.split(',')) {
        const [size, depth] = job.split(':');
        const many = size!.startsWith('wm');
        const bs = parseInt(many ? size!.slice(2) : size!, 10) * 1024;
        await run(nodes, image, `${size} qd${depth}`, bs, Number(depth), Number(opts.seconds), !many && bs >= 128 * 1024, many ? WRITE_MANY_BLOCKS : 1);
      }
    } finally {
      await client.close();
      await transport.close();
    }
  } finally {
    for (const [osd, n] of nodes.entries()) {
      // Where the shard journal's writes went (relocations and grows copy live records again).
      if (n.store.journal) console.log(`journal of osd.${osd}: ${JSON.stringify(n.store.journal.stats)}`);
      await n.shard.stop();
      await n.transport.close();
      await n.store.close();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
