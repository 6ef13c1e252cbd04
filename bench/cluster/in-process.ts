/**
 * The OSD data path's CPU per write, without the machine's scheduling in the figure: three OSD
 * shards (blobstore on files, durable raft storage, 64 PGs of size 3) and the client library in
 * one thread, over TCP loopback. A development measure beside bench/cluster, whose figures move
 * with how the 2 shared cores are split between five processes: here nothing waits for another
 * process to be scheduled, so CPU ms per write (user + sys of this process, the client's share
 * included) compares two versions of the code fairly. Run both versions at once to compare them
 * under the same load.
 *
 *   node --import tsx bench/cluster/in-process.ts [--seconds 8] [--jobs 4k:32,4k:1,128k:8]
 *
 * Prints one line per job; not a target benchmark (no baseline, no JSON line).
 */
import { mkdtempSync, rmSync } from 'node:fs';
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
  .parse()
  .opts<{ seconds: string; jobs: string }>();

const MiB = 1 << 20;
const PGS = 64;
const SPAN = 128 * MiB;
const logger = pino({ level: 'warn' });

async function run(image: Image, label: string, bs: number, qd: number, seconds: number, sequential: boolean): Promise<void> {
  const block = new Uint8Array(bs).fill(7);
  let ops = 0;
  let next = 0;
  const deadline = Date.now() + seconds * 1000;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: qd }, async () => {
      while (Date.now() < deadline) {
        const offset = sequential ? (next = (next + bs) % SPAN) : Math.floor(Math.random() * (SPAN / bs)) * bs;
        await image.write(offset, [block]);
        ops++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  const wall = (performance.now() - t0) / 1000;
  const perOp = (us: number) => (us / 1000 / ops).toFixed(3);
  console.log(
    `${label.padEnd(12)} ${String(ops).padStart(7)} writes ${(ops / wall).toFixed(0).padStart(6)} IOPS  cpu ms/write ${perOp(cpu.user + cpu.system)} (user ${perOp(cpu.user)}, sys ${perOp(cpu.system)})  ${((cpu.user + cpu.system) / 1e6 / wall).toFixed(2)} cores`,
  );
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-in-process-'));
  const nodes: { transport: TcpTransport; store: BlobShardStore; shard: Shard; port: number }[] = [];
  try {
    for (let osd = 0; osd < 3; osd++) {
      const transport = new TcpTransport({ source: `osd.${osd}` }, logger);
      const store = await BlobShardStore.open({ shard: 0, path: join(dir, `osd${osd}.blob`), sizeBytes: 1024 * MiB, create: true, logger });
      const shard = new Shard({ osd, shard: 0, listen: { host: '127.0.0.1', port: 0 }, transport, store, raftStorage: new DiskRaftStorage(store), logger });
      nodes.push({ transport, store, shard, port: (await shard.start()).port });
    }
    const map: ClusterMap = {
      epoch: 1,
      osds: nodes.map((n, id) => ({ id, address: { host: '127.0.0.1', port: n.port }, shards: 1, host: `h${id}`, failureDomain: `h${id}`, weight: 1, up: true, in: true, lastHeartbeatMs: 0 })),
      pools: [{ id: 1, name: 'rbd', size: 3, minSize: 2, pgNum: PGS, failureDomain: 'host' }],
      pgs: Array.from({ length: PGS }, (_, index) => ({ pool: 1, index, epoch: 1, replicas: [0, 1, 2].map((k) => ({ osd: (index + k) % 3, shard: 0 })) })),
      images: [{ id: 'img', pool: 1, name: 'disk', sizeBytes: SPAN, objectSizeBytes: 4 * MiB, createdMs: 0 }],
      policies: [],
    };
    for (const n of nodes) n.shard.setMap(map);
    const transport = new TcpTransport({ source: 'bench' }, logger);
    const client = new ClusterClient(transport, new StaticMapSource(map), { retry: { opTimeoutMs: 60_000, attemptTimeoutMs: 5000 } });
    try {
      const image = await client.openImage('rbd/disk');
      // As fio's precondition: the objects exist before random writes land in them.
      await run(image, 'precondition', MiB, 8, 6, true);
      for (const job of opts.jobs.split(',')) {
        const [size, depth] = job.split(':');
        const bs = parseInt(size!, 10) * 1024;
        await run(image, `${size} qd${depth}`, bs, Number(depth), Number(opts.seconds), bs >= 128 * 1024);
      }
    } finally {
      await client.close();
      await transport.close();
    }
  } finally {
    for (const n of nodes) {
      await n.shard.stop();
      await n.transport.close();
      await n.store.close();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
