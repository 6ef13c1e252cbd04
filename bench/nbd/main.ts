/**
 * Is the NBD frontend a bottleneck? fio's nbd engine drives, in one run and with the same jobs,
 *   - fastblock's NbdFrontend over an in-memory volume (test/nbd/serve-memory.ts), and
 *   - nbdkit's memory plugin, the reference C server on the same machine.
 * Both stores are RAM, so the difference is the server. Jobs: 4 KiB random write and read at
 * QD32 and QD1, after a sequential precondition write of the tested area. The servers alternate
 * within each round and the median round is kept, because the machine is shared.
 *
 *   npm run bench -- nbd [--runtime 5] [--rounds 3]
 *
 * Last line: {"bench":"nbd","figures":{...},"ratios":{...}} with ratios fastblock/nbdkit for IOPS
 * (higher is better, 1.0 = parity).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { TestGateway, fioJson, runOk, sleep } from '../../test/nbd/harness.js';
import { freePort } from '../../test/support/ports.js';

const opts = new Command()
  .option('--runtime <s>', 'seconds per job', '5')
  .option('--rounds <n>', 'runs per job and server (the median is kept)', '3')
  .option('--size <MiB>', 'area tested', '256')
  .parse()
  .opts<{ runtime: string; rounds: string; size: string }>();
const runtime = Number(opts.runtime);
const rounds = Number(opts.rounds);
const sizeMiB = Number(opts.size);

interface Job {
  readonly name: string;
  readonly rw: 'randwrite' | 'randread';
  readonly iodepth: number;
}
const JOBS: readonly Job[] = [
  { name: 'randwrite_4k_qd32', rw: 'randwrite', iodepth: 32 },
  { name: 'randread_4k_qd32', rw: 'randread', iodepth: 32 },
  { name: 'randwrite_4k_qd1', rw: 'randwrite', iodepth: 1 },
  { name: 'randread_4k_qd1', rw: 'randread', iodepth: 1 },
];

const dir = mkdtempSync(join(tmpdir(), 'fastblock-bench-nbd-'));

async function fio(uri: string, args: string[]): Promise<{ iops: number; p99us: number }> {
  const { stdout } = await runOk('fio', ['--name=bench', '--ioengine=nbd', `--uri=${uri}`, `--size=${sizeMiB}M`, '--output-format=json', ...args], { cwd: dir, timeoutMs: (runtime + 60) * 1000 });
  const job = fioJson(stdout).jobs[0] as unknown as { read: FioSide; write: FioSide };
  const side = job.write.iops > job.read.iops ? job.write : job.read;
  return { iops: side.iops, p99us: (side.clat_ns.percentile['99.000000'] ?? 0) / 1000 };
}
interface FioSide {
  iops: number;
  clat_ns: { percentile: Record<string, number> };
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Figure {
  iops: number;
  p99us: number;
  cpuUsPerIo: number;
}

async function job(uri: string, pid: number, job: Job): Promise<Figure> {
  const cpu0 = cpuSeconds(pid);
  const r = await fio(uri, [`--rw=${job.rw}`, '--bs=4k', `--iodepth=${job.iodepth}`, '--time_based', `--runtime=${runtime}`, '--randrepeat=0']);
  return { ...r, cpuUsPerIo: ((cpuSeconds(pid) - cpu0) * 1e6) / (r.iops * runtime) };
}

/** The round with the median IOPS: one lucky or starved run on a shared machine does not decide. */
function median(figures: Figure[]): Figure {
  return [...figures].sort((a, b) => a.iops - b.iops)[Math.floor(figures.length / 2)]!;
}

const gateway = await TestGateway.start(['--volume', `bench/mem:${sizeMiB}M`, '--no-dynamic']);
const nbdkitPidFile = join(dir, 'nbdkit.pid');
const nbdkitPort = await freePort();
await runOk('nbdkit', ['-i', '127.0.0.1', '-p', String(nbdkitPort), '-P', nbdkitPidFile, 'memory', `${sizeMiB}M`]);
await sleep(100);
const nbdkitPid = Number(readFileSync(nbdkitPidFile, 'utf8').trim());
const servers = [
  { label: 'nbdkit', uri: `nbd://127.0.0.1:${nbdkitPort}/`, pid: nbdkitPid },
  { label: 'fastblock', uri: gateway.uri('bench/mem'), pid: gateway.pid },
] as const;

const results: Record<string, Record<string, Figure>> = { nbdkit: {}, fastblock: {} };
try {
  console.log(`fio nbd engine, ${runtime} s per job, ${rounds} rounds (median kept), ${sizeMiB} MiB area; 2 cores shared with other work`);
  for (const server of servers) await fio(server.uri, ['--rw=write', '--bs=1M', '--iodepth=8']);
  for (const j of JOBS) {
    // The two servers take turns within each round, so a change in the machine's load hits both.
    const samples: Record<string, Figure[]> = { nbdkit: [], fastblock: [] };
    for (let round = 0; round < rounds; round++) {
      for (const server of servers) samples[server.label]!.push(await job(server.uri, server.pid, j));
    }
    for (const server of servers) {
      const f = median(samples[server.label]!);
      results[server.label]![j.name] = f;
      console.log(`${server.label.padEnd(10)} ${j.name.padEnd(18)} ${Math.round(f.iops).toString().padStart(7)} IOPS  p99 ${f.p99us.toFixed(0).padStart(6)} us  server CPU ${f.cpuUsPerIo.toFixed(1)} us/IO  (rounds: ${samples[server.label]!.map((x) => Math.round(x.iops / 1000) + 'k').join(' ')})`);
    }
  }
} finally {
  process.kill(nbdkitPid, 'SIGTERM');
  await gateway.stop();
  rmSync(dir, { recursive: true, force: true });
}
const fastblock = results.fastblock!;
const nbdkit = results.nbdkit!;

const figures: Record<string, number> = {};
const ratios: Record<string, number> = {};
for (const job of JOBS) {
  figures[`fastblock_${job.name}_iops`] = Math.round(fastblock[job.name]!.iops);
  figures[`nbdkit_${job.name}_iops`] = Math.round(nbdkit[job.name]!.iops);
  figures[`fastblock_${job.name}_p99_us`] = Math.round(fastblock[job.name]!.p99us);
  figures[`nbdkit_${job.name}_p99_us`] = Math.round(nbdkit[job.name]!.p99us);
  figures[`fastblock_${job.name}_cpu_us_per_io`] = Number(fastblock[job.name]!.cpuUsPerIo.toFixed(1));
  figures[`nbdkit_${job.name}_cpu_us_per_io`] = Number(nbdkit[job.name]!.cpuUsPerIo.toFixed(1));
  ratios[job.name] = Number((fastblock[job.name]!.iops / nbdkit[job.name]!.iops).toFixed(3));
}
console.log(JSON.stringify({ bench: 'nbd', figures, ratios }));
