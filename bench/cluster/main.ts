/**
 * The whole path against the NBD ceiling of this machine. fio's nbd engine drives, with the same
 * jobs in one run:
 *   - fastblock: NBD gateway -> client library -> 3 OSDs (raft, size 3, blobstore on files), and
 *   - qemu-storage-daemon exporting a raw file over NBD (no replication: the ceiling of an NBD
 *     server on this disk).
 * After a sequential precondition write of the tested area: 4 KiB random write and read at QD1
 * and QD32, 128 KiB sequential write and read at QD8. Also the CPU seconds the fastblock
 * processes (monitor, OSDs, gateway) spend per 1,000 I/Os.
 *
 * One more job, randwrite_4k_qd32_writeback, writes a second image exported with the gateway's
 * write-back cache (docs/operations.md, "Gateway exports"): acknowledged once in the gateway's
 * crash-safe log, as qsd acknowledges from the host's page cache, and sent to the 3 replicas
 * grouped by object. Both sides end the job with a flush (fio end_fsync), so the figure counts
 * the drain. The issue's headline ratios are the writethrough jobs above.
 *
 *   npm run bench -- cluster [--runtime 30] [--quick] [--size 256] [--jobs randwrite_4k_qd32,...]
 *
 * Last line: {"bench":"cluster","figures":{...},"ratios":{...}}; ratios are fastblock/baseline
 * (IOPS or bandwidth; higher is better, 1.0 = parity).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { runFio, type FioJob } from '../../test/cluster/harness/fio.js';
import { startQsdExport } from '../../test/cluster/harness/qemu-storage-daemon.js';
import { startTestCluster, storePlugin } from '../../test/cluster/harness/test-cluster.js';

const opts = new Command()
  .option('--runtime <s>', 'seconds per job', '30')
  .option('--quick', 'development run: 5 s per job, 128 MiB area')
  .option('--size <MiB>', 'area tested', '256')
  .option('--jobs <names>', 'only these jobs, comma-separated (development runs; the target run is all of them)')
  .parse()
  .opts<{ runtime: string; quick?: boolean; size: string; jobs?: string }>();
const runtime = opts.quick ? 5 : Number(opts.runtime);
const sizeMiB = opts.quick ? 128 : Number(opts.size);

interface Job {
  readonly name: string;
  readonly rw: FioJob['rw'];
  readonly bs: string;
  readonly iodepth: number;
  /** Compared by bandwidth (MiB/s) rather than IOPS. */
  readonly bandwidth: boolean;
  /** Against the image exported with the write-back cache, ending with a flush on both sides. */
  readonly writeBack?: boolean;
}

const ALL_JOBS: readonly Job[] = [
  { name: 'randwrite_4k_qd1', rw: 'randwrite', bs: '4k', iodepth: 1, bandwidth: false },
  { name: 'randwrite_4k_qd32', rw: 'randwrite', bs: '4k', iodepth: 32, bandwidth: false },
  { name: 'randread_4k_qd1', rw: 'randread', bs: '4k', iodepth: 1, bandwidth: false },
  { name: 'randread_4k_qd32', rw: 'randread', bs: '4k', iodepth: 32, bandwidth: false },
  { name: 'write_128k_qd8', rw: 'write', bs: '128k', iodepth: 8, bandwidth: true },
  { name: 'read_128k_qd8', rw: 'read', bs: '128k', iodepth: 8, bandwidth: true },
  { name: 'randwrite_4k_qd32_writeback', rw: 'randwrite', bs: '4k', iodepth: 32, bandwidth: false, writeBack: true },
];
const wanted = opts.jobs?.split(',').map((name) => name.trim());
for (const name of wanted ?? []) if (!ALL_JOBS.some((job) => job.name === name)) throw new Error(`--jobs: no job ${name} (jobs: ${ALL_JOBS.map((job) => job.name).join(', ')})`);
const JOBS = wanted ? ALL_JOBS.filter((job) => wanted.includes(job.name)) : ALL_JOBS;

/** utime + stime of a process, in seconds (Linux /proc). */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

async function measure(uri: string, job: Job, pids: readonly number[], daemons: ReadonlyMap<string, number> = new Map()) {
  const cpuBefore = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const daemonBefore = new Map([...daemons].map(([name, pid]) => [name, cpuSeconds(pid)]));
  const result = await runFio({ uri, rw: job.rw, bs: job.bs, iodepth: job.iodepth, size: `${sizeMiB}M`, runtime, ...(job.writeBack ? { extra: ['--end_fsync=1'] } : {}) });
  const cpu = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - cpuBefore;
  // Per daemon too: the gateway's share is the client library's and the frontend's cost per I/O.
  const daemonCpu = new Map([...daemons].map(([name, pid]) => [name, cpuSeconds(pid) - daemonBefore.get(name)!]));
  if (result.error !== 0) throw new Error(`fio ${job.name} on ${uri} failed: error ${result.error}: ${result.stderr}`);
  const side = job.rw.includes('read') ? result.read : result.write;
  const perDaemon = new Map([...daemonCpu].map(([name, s]) => [name, side.ios ? (s / side.ios) * 1000 : 0]));
  return { iops: side.iops, bwMiBps: side.bwMiBps, p99Us: side.p99Us, ios: side.ios, cpuPer1kIo: side.ios ? (cpu / side.ios) * 1000 : 0, perDaemon };
}

async function main(): Promise<void> {
  if (!storePlugin()) throw new Error('the blobstore plugin manifest (plugins/store-blobstore/plugin.ts) is missing; set FASTBLOCK_TEST_STORE_PLUGIN');
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-bench-cluster-'));
  const raw = join(dir, 'baseline.raw');
  execFileSync('truncate', ['-s', `${sizeMiB}M`, raw]);
  const { cluster, cleanup } = await startTestCluster({
    name: 'bench',
    logLevel: 'warn',
    storeSizeMb: Math.max(2048, sizeMiB * 4),
    pool: { name: 'rbd', size: 3, pgNum: 64 },
    image: { name: 'disk', sizeBytes: sizeMiB * 1024 * 1024 },
    extraImages: [{ name: 'disk-wb', sizeBytes: sizeMiB * 1024 * 1024 }],
    gatewaySettings: { 'nbd.exports': 'rbd/disk,rbd/disk-wb:writeback' },
  });
  const writeBackUri = cluster.nbdUri.replace(/rbd\/disk$/, 'rbd/disk-wb');
  const qsd = await startQsdExport(raw, cluster.state.nbdPort + 1);
  try {
    const pids = [...cluster.daemons.values()].map((d) => d.pid);
    const daemonPids = new Map([...cluster.daemons.values()].map((d) => [d.name, d.pid]));
    const servers = [
      { name: 'fastblock', uri: cluster.nbdUri },
      ...(JOBS.some((job) => job.writeBack) ? [{ name: 'fastblock (writeback)', uri: writeBackUri }] : []),
      { name: 'qsd', uri: qsd.uri },
    ];
    for (const server of servers) {
      const pre = await runFio({ uri: server.uri, rw: 'write', bs: '1M', iodepth: 8, size: `${sizeMiB}M` });
      if (pre.error !== 0) throw new Error(`precondition on ${server.name} failed: ${pre.stderr}`);
    }
    const figures: Record<string, number> = {};
    const ratios: Record<string, number> = {};
    const rows: string[] = [];
    for (const job of JOBS) {
      const fb = await measure(job.writeBack ? writeBackUri : cluster.nbdUri, job, pids, daemonPids);
      const base = await measure(qsd.uri, job, []);
      const unit = job.bandwidth ? 'mibps' : 'iops';
      const ours = job.bandwidth ? fb.bwMiBps : fb.iops;
      const theirs = job.bandwidth ? base.bwMiBps : base.iops;
      figures[`${unit}_${job.name}_fastblock`] = ours;
      figures[`${unit}_${job.name}_qsd`] = theirs;
      figures[`p99_us_${job.name}_fastblock`] = fb.p99Us;
      figures[`p99_us_${job.name}_qsd`] = base.p99Us;
      figures[`cpu_s_per_1k_io_${job.name}_fastblock`] = Math.round(fb.cpuPer1kIo * 1000) / 1000;
      ratios[job.name] = theirs > 0 ? Math.round((ours / theirs) * 1000) / 1000 : 0;
      rows.push(
        `${job.name.padEnd(18)} ${String(ours).padStart(9)} ${String(theirs).padStart(9)} ${unit.padEnd(5)} ${ratios[job.name].toFixed(3).padStart(7)}x  p99 ${String(fb.p99Us).padStart(7)} / ${String(base.p99Us).padStart(7)} us  cpu ${fb.cpuPer1kIo.toFixed(3)} s/1k io`,
      );
      console.log(rows[rows.length - 1]);
      for (const [name, perKIo] of fb.perDaemon) figures[`cpu_s_per_1k_io_${job.name}_${name}`] = Math.round(perKIo * 1000) / 1000;
      console.log(`${''.padEnd(18)} cpu s/1k io by daemon: ${[...fb.perDaemon].map(([name, v]) => `${name} ${v.toFixed(3)}`).join(', ')}`);
    }
    console.log(`\n${'job'.padEnd(18)} ${'fastblock'.padStart(9)} ${'qsd'.padStart(9)}       ratio   (3 OSDs, size 3, ${runtime} s per job, ${sizeMiB} MiB area)`);
    for (const row of rows) console.log(row);
    console.log(JSON.stringify({ bench: 'cluster', figures, ratios }));
  } finally {
    await qsd.stop();
    await cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
