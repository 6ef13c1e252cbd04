/**
 * Issue 7's benchmark. One QEMU TCG guest gets these virtio-blk disks:
 *   - vda: fastblock's vhost controller over a 1-replica image of a local cluster (the default,
 *     --backend cluster: fastblockd with the client and vhost plugins beside a monitor and one
 *     OSD), or over the in-memory test target (--backend memory: test/vhost/daemon.ts, the
 *     frontend alone, no cluster in the path);
 *   - vdb: qemu-storage-daemon's vhost-user-blk export of a raw file, the reference, with qsd's
 *     default options. The raw file lives where the backend keeps its data: with the cluster, on
 *     the filesystem of the OSD's store (the issue's "raw file", on the same disk, as
 *     bench/cluster does); with the memory target, on tmpfs (RAM against RAM);
 *   - vdc (cluster backend): a second controller of the same gateway on a second image, in
 *     write-through mode (the side "writethrough", randwrite only, after all the rounds: its writes
 *     would take the OSD's read cache from vda's data before vda's randread).
 * What the sides promise differs, and the figures say which is which. qsd's defaults go through
 * the host's page cache and flush nothing unless the guest asks (fio's direct=1 does not): an
 * acknowledged write survives qsd's death but not the host's. vda runs with the write-back cache
 * (--cache writeback, the default): acknowledged once in the gateway's crash-safe log on tmpfs,
 * the same promise. Reads: qsd serves its file from the page cache, which holds all of it after the
 * precondition; vda's writeback controller has a read cache of the image's size (vhost.readCacheMiB;
 * 64 MiB by default), filled by what it writes back (the precondition) and reads. Writes: qsd's
 * dirty pages stay in the page cache until the kernel's flusher takes them (vm.dirty_expire_centisecs,
 * 30 s) or the guest flushes (each write job's end_fsync), so the reference writes nothing back
 * during a job; the controller is given the same room: its write-back log holds a write up to
 * vhost.writeBackHoldMs = 10 s (the most the setting takes; 500 ms by default) in a 1 GiB ring
 * (64 MiB by default), written back at the job's flush or once the ring is half full.
 * `--write-back-hold-ms 500 --write-back-mib 64` measures the defaults instead. vdc acknowledges a
 * write only once it is in a raft log flushed to the device,
 * which no page cache can match in latency; its ratio is printed beside the others. Write jobs end
 * with a flush (end_fsync) on every side, so no side leaves a backlog to the job after it.
 * The same fio job (libaio, O_DIRECT, 4 KiB, QD16) runs in the guest on each, alternating which goes
 * first from round to round; each figure is the best of its rounds (the machine is shared, and a
 * round that loses the CPU to a neighbour says nothing about either server). The guest is CPU-bound
 * under TCG, so read the ratio as overhead only.
 *
 *   npm run bench -- vhost [--runtime 5] [--rounds 3] [--backend cluster|memory] [--reference-direct]
 *
 * Last line: {"bench":"vhost","figures":{...},"ratios":{...}}, ratios fastblock/reference IOPS of each side's best
 * round; figures also carry the median over rounds of the per-round ratio (randwrite_ratio_median_of_rounds).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { startGuest, vhostUserBlk, vmSkipReason } from '../../test/support/vm.js';
import { VhostDaemon } from '../../test/vhost/daemon-process.js';

const opts = new Command()
  .option('--runtime <s>', 'seconds per fio job', '5')
  .option('--rounds <n>', 'rounds of the four jobs', '3')
  .option('--keep', "keep the run's directories (the daemons' logs) for a look afterwards")
  .option('--reference-direct', "qsd opens its file with O_DIRECT (cache.direct=on, aio=io_uring, as bench/cluster's qsd): not the issue's reference, a measure of what the host page cache gives it")
  .option('--backend <kind>', 'cluster (a 1-replica image of a local cluster), or memory (the in-memory test target)', 'cluster')
  .option('--guest-cpus <n>', 'vCPUs of the guest', '2')
  .option('--cache <mode>', "vda's cache with the cluster backend: writeback (the reference's promise) or writethrough", 'writeback')
  .option('--write-back-hold-ms <ms>', "vhost.writeBackHoldMs of vda (the reference's page cache holds dirty pages up to 30 s)", '10000')
  .option('--write-back-mib <MiB>', 'vhost.writeBackMiB of vda: its log ring', '1024')
  .parse()
  .opts<{ runtime: string; rounds: string; backend: string; referenceDirect?: boolean; guestCpus: string; cache: string; keep?: boolean; writeBackHoldMs: string; writeBackMib: string }>();
if (opts.cache !== 'writeback' && opts.cache !== 'writethrough') throw new Error(`--cache ${opts.cache}: writeback or writethrough`);
const cluster = opts.backend === 'cluster';
if (opts.backend !== 'memory' && opts.backend !== 'cluster') throw new Error(`--backend ${opts.backend}: memory or cluster`);
const runtime = Number(opts.runtime);
const rounds = Number(opts.rounds);
const SIZE_MIB = 256;

const skip = vmSkipReason();
if (skip) {
  console.log(`SKIP ${skip}`);
  console.log(JSON.stringify({ bench: 'vhost', figures: {}, ratios: {}, skipped: skip }));
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'fastblock-bench-vhost-'));
const referenceSocket = join(dir, 'qsd.sock');
// The cluster's OSD stores under `dir`, so the reference's file goes there too; the memory
// target's data is in RAM, so its reference's is on tmpfs when there is one.
const referenceDir = opts.backend === 'memory' && existsSync('/dev/shm') ? mkdtempSync(join('/dev/shm', 'fastblock-bench-vhost-')) : dir;
const referenceImage = join(referenceDir, 'qsd.img');
// The write-back log on tmpfs, as the gateway's default (/dev/shm/fastblock-write-back), but apart.
const writeBackDir = existsSync('/dev/shm') ? mkdtempSync(join('/dev/shm', 'fastblock-bench-write-back-')) : join(dir, 'write-back');
writeFileSync(referenceImage, '');
truncateSync(referenceImage, SIZE_MIB * 1024 * 1024);

/** utime + stime of a process, in seconds (Linux /proc); 0 once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds of the guest's vCPU threads ("CPU n/TCG") together; the rest of QEMU is the difference. */
function vcpuSeconds(pid: number): number {
  let total = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      if (!readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').startsWith('CPU ')) continue;
      const fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / 100;
    }
  } catch {
    // the guest is gone
  }
  return total;
}

/** fastblock's side: the vhost frontend over the chosen backend, serving `socket` (and `writethroughSocket` with the cluster). */
async function startFastblock(): Promise<{ socket: string; writethroughSocket?: string; gatewayMetrics?: string; stop(): Promise<void>; pids: Record<string, number> }> {
  if (opts.backend === 'memory') {
    const socket = join(dir, 'fastblock.sock');
    const daemon = await VhostDaemon.start({
      target: 'memory',
      volumes: { 'rbd/bench': SIZE_MIB * 1024 * 1024 },
      controllers: [{ volume: 'rbd/bench', socket, queues: 2 }],
    });
    return { socket, stop: () => daemon.stop(), pids: { gateway: daemon.pid } };
  }
  // Loaded only here: the memory backend needs none of the cluster's code.
  const { LocalCluster } = await import('../../cli/commands/vstart-cluster.js');
  // Ports away from vstart's defaults: other suites may run a cluster on this machine meanwhile.
  const base = 21000 + Math.floor(Math.random() * 20000);
  // The cluster's own gateway (vstart's: tcp,client,nbd,vhost) serves the controller, so it runs
  // with the node flags of every daemon, and FASTBLOCK_DAEMON_NODE_ARGS (e.g. --cpu-prof) reaches
  // it as it reaches the OSD.
  // Where LocalCluster expects its image's controller (it waits for that socket).
  const socket = join(dir, 'cluster', 'vhost-rbd-bench.sock');
  const writethroughSocket = join(dir, 'fastblock-wt.sock');
  const local = await LocalCluster.start({
    dir: join(dir, 'cluster'),
    osds: 1,
    monitorPort: base,
    osdBasePort: base + 10,
    nbdPort: base + 5,
    pool: { name: 'rbd', size: 1, pgNum: 16 },
    image: { name: 'bench', sizeBytes: SIZE_MIB * 1024 * 1024 },
    extraImages: [{ name: 'bench-wt', sizeBytes: SIZE_MIB * 1024 * 1024 }],
    // Room for both images and for the journal's growth while a job's flush (the whole image's writes at once) is applied.
    storeSizeMb: 4096,
    // The gateway's /metrics give the read cache's hits per job.
    metricsBasePort: base + 100,
    frontends: { vhost: true },
    gatewaySettings: {
      'vhost.controllers': `rbd/bench=${socket}:2:${opts.cache},rbd/bench-wt=${writethroughSocket}:2:writethrough`,
      'vhost.writeBackDir': writeBackDir,
      // The reference reads its whole file from the host's page cache; the controller gets a read
      // cache as large as the image (the default is 64 MiB per export).
      'vhost.readCacheMiB': SIZE_MIB,
      // The reference's dirty pages wait in the page cache for the guest's flush; vda's writes in its log.
      'vhost.writeBackHoldMs': Number(opts.writeBackHoldMs),
      'vhost.writeBackMiB': Number(opts.writeBackMib),
    },
    logLevel: 'warn',
  });
  return {
    socket,
    writethroughSocket,
    gatewayMetrics: local.metricsUrls.gateway,
    stop: () => local.stop(),
    pids: Object.fromEntries([...local.daemons.values()].map((d) => [d.name, d.pid])),
  };
}

const daemon = await startFastblock();
const qsdPid = join(dir, 'qsd.pid');
const qsd = spawnSync('qemu-storage-daemon', [
  '--daemonize', '--pidfile', qsdPid,
  '--blockdev', `driver=file,node-name=file0,filename=${referenceImage}${opts.referenceDirect ? ',cache.direct=on,aio=io_uring' : ''}`,
  '--export', `type=vhost-user-blk,id=exp0,node-name=file0,addr.type=unix,addr.path=${referenceSocket},writable=on,num-queues=2`,
]);
if (qsd.status !== 0) {
  await daemon.stop();
  throw new Error(`qemu-storage-daemon failed: ${qsd.stderr}`);
}
// Read now, not at the end: qsd must be stopped even if the directory is gone by then.
const qsdProcess = Number(readFileSync(qsdPid, 'utf8'));

const job = (dev: string, rw: string) =>
  `host fio --name=b --filename=${dev} --direct=1 --ioengine=libaio --rw=${rw} --bs=4k --iodepth=16 --size=${SIZE_MIB}M $([ ${rw} = randwrite ] && echo --end_fsync=1) ` +
  `--time_based --runtime=${runtime} --ramp_time=1 --randrepeat=0 --output-format=terse --terse-version=3 | tail -n 1`;
// Each disk is written whole first, so reads hit allocated data on both.
const script = `
ios() { awk '{ print $1 + $5 }' /sys/block/$1/stat; }
irqs() { n=$(basename $(readlink /sys/block/$1/device)); awk -v n="$n-" 'index($0, n) { for (i = 2; i <= 3; i++) s += $i } END { print s + 0 }' /proc/interrupts; }
# Guest-wide: local timer interrupts, rescheduling and call-function IPIs (both CPUs), idle jiffies.
cpuwide() { awk '$1 == "LOC:" || $1 == "RES:" || $1 == "CAL:" { printf "%d ", $2 + $3 }' /proc/interrupts; awk '$1 == "cpu" { print $5 }' /proc/stat; }
run() {
  who=$1; rw=$2
  case $who in fastblock) dev=/dev/vda;; reference) dev=/dev/vdb;; writethrough) dev=/dev/vdc;; esac
  echo "START $who $rw"
  before=$(irqs $(basename $dev)); iosBefore=$(ios $(basename $dev)); wideBefore="$(cpuwide)"
  result="$(${job('$dev', '$rw')})"
  echo "IRQS $who $rw $(( $(irqs $(basename $dev)) - before )) $(( $(ios $(basename $dev)) - iosBefore ))"
  echo "WIDE $who $rw $wideBefore $(cpuwide)"
  echo "RESULT $who $rw $result"
}
for d in vda vdb; do dd if=/dev/zero of=/dev/$d bs=1M count=${SIZE_MIB} oflag=direct conv=fsync 2>/dev/null; done
for round in $(seq ${rounds}); do
  for rw in randwrite randread; do
    if [ $((round % 2)) = 1 ]; then order="fastblock reference"; else order="reference fastblock"; fi
    for who in $order; do run $who $rw; done
  done
done
# The writethrough image after all rounds: its writes would otherwise take the OSD's read cache
# from vda's data before each randread (one OSD serves both images).
${cluster ? `dd if=/dev/zero of=/dev/vdc bs=1M count=${SIZE_MIB} oflag=direct conv=fsync 2>/dev/null
for round in $(seq ${rounds}); do run writethrough randwrite; done` : ''}
`;

let figures: Record<string, number> = {};
// Each side's IOPS per round, in round order: the two sides of a round ran back to back.
const perRound: Record<string, number[]> = {};
const runtimes: Record<string, number[]> = {};
// CPU per I/O of each side's processes (fastblock: gateway, plus the OSD and monitor with the
// cluster backend; the reference: qemu-storage-daemon), and of the guest (QEMU) while it drives
// that side: what the guest pays for kicks and interrupts differs from one back-end to the other,
// and the guest is what the figure is bound by. Sampled from START to RESULT of each job, so it
// includes fio's 1 s ramp and start-up: compare sides and versions, not absolute values.
const sidePids = (who: string): Record<string, number> => (who === 'reference' ? { qsd: qsdProcess } : daemon.pids);
let jobStart: Record<string, number> = {};
let guestPid = 0;
const cpuPerKIo: Record<string, number[]> = {};
// Interrupts the guest took per I/O it completed on each disk (/proc/interrupts and the disk's stat).
const irqsPerIo: Record<string, number[]> = {};
let lastIos = 0;
// terse v3: field 8 = read IOPS, field 49 = write IOPS (1-based)
const iopsOf = (rw: string, terse: string): number => Number(terse.split(';')[rw === 'randread' ? 7 : 48]);
// vda's read cache (the gateway's /metrics): hits and misses of each fastblock job, sampled as the
// CPU is (at START and RESULT; the scrape is asynchronous, a few ms late at most).
const readCacheSamples: Promise<{ hits: number; misses: number } | undefined>[] = [];
const readCacheHitRatio: Record<string, number[]> = {};
const readCacheJobs: Promise<void>[] = [];
const readCacheCounts = async (): Promise<{ hits: number; misses: number } | undefined> => {
  if (daemon.gatewayMetrics === undefined) return undefined;
  try {
    const text = await (await fetch(daemon.gatewayMetrics)).text();
    const sample = (name: string): number => Number(new RegExp(`^${name}\\{volume="rbd/bench"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { hits: sample('fastblock_read_cache_hits_total'), misses: sample('fastblock_read_cache_misses_total') };
  } catch {
    return undefined;
  }
};
const onLine = (line: string): void => {
  // Progress on stderr (a profiler can be started on the job it wants).
  if (/^(START|RESULT) /.test(line)) console.error(`[${new Date().toISOString()}] ${line.split(' ', 3).join(' ')}`);
  const start = /^START (\w+) (\w+)/.exec(line);
  if (start?.[1] === 'fastblock') readCacheSamples.push(readCacheCounts());
  const end = /^RESULT (fastblock) (\w+)/.exec(line);
  if (end) {
    const before = readCacheSamples.at(-1)!;
    const after = readCacheCounts();
    readCacheSamples.push(after);
    readCacheJobs.push(Promise.all([before, after]).then(([b, a]) => {
      if (b === undefined || a === undefined) return;
      const reads = a.hits - b.hits + (a.misses - b.misses);
      if (reads > 0 && end[2] === 'randread') (readCacheHitRatio.fastblock_randread_read_cache_hit_ratio ??= []).push((a.hits - b.hits) / reads);
    }));
  }
  if (start) jobStart = { ...Object.fromEntries(Object.entries(sidePids(start[1]!)).map(([name, pid]) => [name, cpuSeconds(pid)])), guest: cpuSeconds(guestPid), vcpus: vcpuSeconds(guestPid) };
  const irqs = /^IRQS (\w+) (\w+) (\d+) (\d+)/.exec(line);
  if (irqs) {
    lastIos = Number(irqs[4]);
    (irqsPerIo[`guest_irqs_per_io_${irqs[1]}_${irqs[2]}`] ??= []).push(Number(irqs[3]) / Math.max(1, lastIos));
  }
  // LOC RES CAL idle-jiffies, before then after; per I/O of the disk's last IRQS line.
  const wide = /^WIDE (\w+) (\w+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)/.exec(line);
  if (wide && lastIos > 0) {
    const [b, a] = [wide.slice(3, 7).map(Number), wide.slice(7, 11).map(Number)];
    const key = `${wide[1]}_${wide[2]}`;
    (irqsPerIo[`guest_timer_irqs_per_io_${key}`] ??= []).push((a[0]! - b[0]!) / lastIos);
    (irqsPerIo[`guest_resched_ipis_per_io_${key}`] ??= []).push((a[1]! - b[1]!) / lastIos);
    (irqsPerIo[`guest_call_ipis_per_io_${key}`] ??= []).push((a[2]! - b[2]!) / lastIos);
    (irqsPerIo[`guest_idle_ms_per_1k_io_${key}`] ??= []).push(((a[3]! - b[3]!) * 10 * 1000) / lastIos);
  }
  const result = /^RESULT (\w+) (\w+) (.*)$/.exec(line);
  if (result) recordCpu(result[1]!, result[2]!, iopsOf(result[2]!, result[3]!) * runtime);
};
const recordCpu = (who: string, rw: string, ios: number): void => {
  const used = Object.entries(sidePids(who)).map(([name, pid]) => [name, cpuSeconds(pid) - (jobStart[name] ?? 0)] as const);
  const per = (seconds: number) => (ios > 0 ? (seconds / ios) * 1e6 : 0);
  (cpuPerKIo[`cpu_ms_per_1k_io_${who}_${rw}`] ??= []).push(per(used.reduce((sum, [, s]) => sum + s, 0)));
  if (who !== 'reference') for (const [name, s] of used) (cpuPerKIo[`cpu_ms_per_1k_io_${who}_${rw}_${name}`] ??= []).push(per(s));
  (cpuPerKIo[`cpu_ms_per_1k_io_guest_${who}_${rw}`] ??= []).push(per(cpuSeconds(guestPid) - (jobStart.guest ?? 0)));
  // The guest's vCPUs (guest code, TCG) apart from QEMU's other threads (main loop: interrupt injection).
  (cpuPerKIo[`cpu_ms_per_1k_io_guest_vcpus_${who}_${rw}`] ??= []).push(per(vcpuSeconds(guestPid) - (jobStart.vcpus ?? 0)));
};
try {
  const guest = startGuest({
    devices: [
      ...vhostUserBlk(daemon.socket, { id: 'fb', queues: 2 }),
      ...vhostUserBlk(referenceSocket, { id: 'ref', queues: 2 }),
      ...(daemon.writethroughSocket ? vhostUserBlk(daemon.writethroughSocket, { id: 'fbwt', queues: 2 }) : []),
    ],
    hostfs: true,
    memoryMiB: 512,
    cpus: Number(opts.guestCpus),
    script,
    onLine,
    timeoutMs: (5 * rounds * (runtime + 20) + 240) * 1000,
  });
  guestPid = guest.pid ?? 0;
  const result = await guest.done.finally(() => guest.kill());
  if (result.exitCode !== 0) throw new Error(`guest failed:\n${result.console.slice(-3000)}`);
  for (const line of result.output.split('\n')) {
    const m = /^RESULT (\w+) (\w+) (.*)$/.exec(line);
    if (!m) continue;
    const fields = m[3]!.split(';');
    if (fields[4] !== '0') throw new Error(`fio reported error ${fields[4]}: ${line}`);
    const iops = iopsOf(m[2]!, m[3]!);
    const key = `${m[1]}_${m[2]}_iops_4k_qd16`;
    figures[key] = Math.max(figures[key] ?? 0, iops);
    (perRound[key] ??= []).push(iops);
    // fio's runtime of the job, its end_fsync included: past --runtime, the time the flush took.
    (runtimes[`${m[1]}_${m[2]}_runtime_ms`] ??= []).push(Number(fields[m[2] === 'randread' ? 8 : 49]));
    console.log(`${m[1]!.padEnd(10)} ${m[2]!.padEnd(10)} ${iops} IOPS`);
  }
} finally {
  try {
    process.kill(qsdProcess, 'SIGTERM');
  } catch {
    // already gone
  }
  // The figures stand even when stopping fails (on this shared machine the bench's directory in
  // /tmp has been seen to vanish under a run, and the cluster then cannot record its state).
  await daemon.stop().catch((err: unknown) => console.error(`stopping fastblock: ${(err as Error).message}`));
  if (opts.keep) {
    console.error(`kept: ${dir} (daemons' logs under cluster/logs), ${referenceDir}, ${writeBackDir}`);
  } else {
    rmSync(dir, { recursive: true, force: true });
    rmSync(referenceDir, { recursive: true, force: true });
    rmSync(writeBackDir, { recursive: true, force: true });
  }
}

const ratio = (rw: string, who = 'fastblock') => figures[`${who}_${rw}_iops_4k_qd16`]! / figures[`reference_${rw}_iops_4k_qd16`]!;
figures = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, Math.round(v)]));
// The median round of each CPU figure: a round that lost the CPU to a neighbour inflates it.
for (const [key, values] of Object.entries(cpuPerKIo)) figures[key] = Math.round(values.sort((a, b) => a - b)[Math.floor(values.length / 2)]! * 1000) / 1000;
await Promise.all(readCacheJobs);
for (const [key, values] of Object.entries(readCacheHitRatio)) figures[key] = Math.round(values.sort((a, b) => a - b)[Math.floor(values.length / 2)]! * 1000) / 1000;
for (const [key, values] of Object.entries(runtimes)) figures[key] = values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
for (const [key, values] of Object.entries(irqsPerIo)) figures[key] = Math.round(values.sort((a, b) => a - b)[Math.floor(values.length / 2)]! * 1000) / 1000;
figures.backend_is_cluster = opts.backend === 'cluster' ? 1 : 0;
figures.reference_is_direct = opts.referenceDirect ? 1 : 0;
figures.guest_cpus = Number(opts.guestCpus);
figures.fastblock_write_back_cache = cluster && opts.cache === 'writeback' ? 1 : 0;
if (cluster && opts.cache === 'writeback') {
  figures.fastblock_write_back_hold_ms = Number(opts.writeBackHoldMs);
  figures.fastblock_write_back_ring_mib = Number(opts.writeBackMib);
}
const ratios: Record<string, number> = { randwrite_iops_4k_qd16: Number(ratio('randwrite').toFixed(3)), randread_iops_4k_qd16: Number(ratio('randread').toFixed(3)) };
if (cluster) ratios.randwrite_writethrough_iops_4k_qd16 = Number(ratio('randwrite', 'writethrough').toFixed(3));
// Beside the ratios of best rounds (the headline): the median over rounds of each round's ratio,
// which pairs the sides that ran back to back under the same load of the shared machine.
for (const rw of ['randwrite', 'randread']) {
  const ours = perRound[`fastblock_${rw}_iops_4k_qd16`] ?? [];
  const theirs = perRound[`reference_${rw}_iops_4k_qd16`] ?? [];
  const paired = ours.slice(0, theirs.length).map((iops, i) => iops / theirs[i]!).sort((a, b) => a - b);
  if (paired.length > 0) figures[`${rw}_ratio_median_of_rounds`] = Number(paired[Math.floor(paired.length / 2)]!.toFixed(3));
}
console.log(
  JSON.stringify({
    bench: 'vhost',
    figures,
    ratios,
    notes:
      'TCG guest (CPU-bound, ~37x slower than the host): overhead comparison only. ' +
      (opts.backend === 'cluster'
        ? `fastblock serves a 1-replica image of a local cluster (monitor + 1 OSD, blobstore) through the client library in a fastblockd gateway, ${opts.cache === 'writeback' ? `with the write-back cache (acknowledged in the gateway's crash-safe log on tmpfs, as qsd acknowledges from the page cache; writes held up to ${opts.writeBackHoldMs} ms in a ${opts.writeBackMib} MiB ring, written back at the job's flush, as qsd's dirty pages wait for it in the page cache) and a read cache of the image's size (qsd reads its file from the page cache); writethrough: a second image without it (acknowledged once in the OSD's flushed raft log); ` : 'write-through; '}`
        : 'fastblock serves the in-memory test target (no cluster in the path); ') +
      `the reference is qemu-storage-daemon on a raw file ${opts.backend === 'cluster' ? "on the OSD store's filesystem" : 'on tmpfs'}${opts.referenceDirect ? ' opened with O_DIRECT' : ''}. Best of rounds, alternating order. Shared 2-core machine: noisy.`,
  }),
);
