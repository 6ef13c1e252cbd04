/**
 * NVMe/TCP beside NBD, both fastblock frontends over the same volume, both driven by the Linux
 * kernel initiators of one QEMU TCG guest with the same fio jobs (4 KiB random write and read,
 * QD16, libaio, O_DIRECT). One gateway fastblockd serves both (plugins nvmf and nbd), so the
 * difference is the protocol path: the target and the guest's driver. The guest is CPU-bound under
 * TCG, so read the numbers as relative overhead, not as device speed.
 *
 * Backends: `cluster` (default) is a 1-replica image of a local cluster (monitor + 1 OSD on the
 * blobstore, started here) served through the client library, the same image under both frontends;
 * `memory` is an in-memory volume, so only the frontends differ.
 *
 *   npm run bench -- nvmf [--runtime 10] [--rounds 2] [--backend cluster|memory]
 *
 * Each round runs every job on both devices, alternating which goes first; the figure is the best
 * round (the least disturbed by other work on this shared machine). Beside IOPS and p99, the
 * fastblockd CPU time per I/O during each job: the frontends' own cost, which TCG does not blur.
 * Last line:
 * {"bench":"nvmf","figures":{...},"ratios":{...}} with ratios NVMe/TCP over NBD for IOPS.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { LocalCluster } from '../../cli/commands/vstart-cluster.js';
import { startGuest, userNet, vmSkipReason } from '../../test/support/vm.js';
import { MEMORY_VOLUMES, startNvmfDaemon, type NvmfDaemon } from '../../test/nvmf/support/daemon.js';
import { freePortBlock } from '../../test/support/ports.js';

const opts = new Command()
  .option('--runtime <s>', 'seconds per fio job', '10')
  .option('--rounds <n>', 'rounds over both devices', '2')
  .option('--backend <kind>', 'cluster (a 1-replica image) or memory', 'cluster')
  .parse()
  .opts<{ runtime: string; rounds: string; backend: string }>();
const runtime = Number(opts.runtime);
const rounds = Number(opts.rounds);
const VOLUME = 'rbd/bench';
const VOLUME_MIB = 256;
const NQN = 'nqn.2024-01.io.fastblock:rbd:bench';
const JOBS = ['randwrite', 'randread'] as const;

const skip = vmSkipReason();
if (skip) {
  console.log(`SKIP ${skip}`);
  process.exit(0);
}

const GUEST_SCRIPT = `
nbd-client 10.0.2.2 $NBD_PORT /dev/nbd0 -N ${VOLUME} -b 4096 > /dev/null 2>&1
nvme connect -t tcp -a 10.0.2.2 -s $NVME_PORT -n ${NQN} -i 2 > /dev/null
i=0; while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
# Precondition: the tested area written once, so reads find data on both paths.
dd if=/dev/urandom of=/dev/nvme0n1 bs=1M count=128 oflag=direct 2>/dev/null
job() { host fio --name=$2 --filename=$1 --direct=1 --ioengine=libaio --rw=$2 --bs=4k --iodepth=16 \\
  --size=128M --time_based --runtime=$RUNTIME --randrepeat=0 --norandommap --output-format=terse --terse-version=3 | tail -1; }
r=0; while [ $r -lt $ROUNDS ]; do
  for rw in randwrite randread; do
    if [ $((r % 2)) = 0 ]; then order="nvme nbd"; else order="nbd nvme"; fi
    for dev in $order; do
      [ $dev = nvme ] && path=/dev/nvme0n1 || path=/dev/nbd0
      echo "START $dev $rw"
      echo "RESULT $dev $rw $(job $path $rw)"
    done
  done
  r=$((r+1))
done
nvme disconnect -n ${NQN} > /dev/null
nbd-client -d /dev/nbd0 > /dev/null 2>&1
`;

interface Sample {
  readonly iops: number;
  readonly p99us: number;
  /** fastblockd CPU time (user + system) per I/O during the job: the frontend's own cost. */
  readonly cpuUsPerIo: number;
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** fio terse v3: read IOPS is field 8, write IOPS field 49; clat percentiles "99.000000%=usec". */
function parseTerse(line: string, rw: string): Omit<Sample, 'cpuUsPerIo'> {
  const fields = line.split(';');
  const base = rw === 'randread' ? 0 : 41;
  const iops = Number(fields[7 + base]);
  const percentiles = fields.slice(17 + base, 37 + base);
  const p99 = percentiles.find((f) => f.startsWith('99.000000%='));
  return { iops, p99us: p99 ? Number(p99.split('=')[1]) : NaN };
}

const FRONTENDS = [`nvmf.exports=${VOLUME}`, 'nbd.port=0', `nbd.exports=${VOLUME}`, 'nbd.dynamicExports=false'];
let cluster: LocalCluster | undefined;
let clusterDir: string | undefined;

/** The gateway: nvmf and nbd over the chosen backend. */
async function startGateway(): Promise<NvmfDaemon> {
  if (opts.backend === 'memory') return startNvmfDaemon([`nvmf-test-volumes.volumes=${VOLUME}:${VOLUME_MIB}`, ...FRONTENDS], ['nbd'], MEMORY_VOLUMES);
  if (opts.backend !== 'cluster') throw new Error(`--backend ${opts.backend}: cluster or memory`);
  clusterDir = mkdtempSync(join(tmpdir(), 'fastblock-bench-nvmf-'));
  // Ports away from vstart's defaults (other suites may run a cluster here meanwhile), free now.
  const base = await freePortBlock([0, 10, 11]);
  cluster = await LocalCluster.start({
    dir: clusterDir,
    osds: 1,
    monitorPort: base,
    osdBasePort: base + 10,
    pool: { name: 'rbd', size: 1, pgNum: 16 },
    image: { name: 'bench', sizeBytes: VOLUME_MIB * 1024 * 1024 },
    storeSizeMb: 1024,
    gateway: false,
    logLevel: 'warn',
  });
  return startNvmfDaemon([`client.monitors=${cluster.monitorAddress}`, ...FRONTENDS], ['nbd'], join(process.cwd(), 'client'));
}

const daemon = await startGateway().catch(async (err: unknown) => {
  await cluster?.stop();
  throw err;
});
const results = new Map<string, Sample[]>();
const daemonPid = daemon.process.child.pid!;
let cpuAtStart = 0;
try {
  const nbdPort = Number((await daemon.process.waitFor(/NBD server listening/)).port);
  console.log(`backend ${opts.backend}; one TCG guest, fio libaio 4k QD16, ${runtime} s per job, ${rounds} rounds; 2 host cores shared with other work: numbers are noisy`);
  const guest = startGuest({
    devices: userNet(),
    modules: ['nvme-tcp', 'nbd'],
    hostfs: true,
    memoryMiB: 512,
    env: { NVME_PORT: daemon.port, NBD_PORT: nbdPort, RUNTIME: runtime, ROUNDS: rounds },
    script: GUEST_SCRIPT,
    timeoutMs: (rounds * 4 * (runtime + 15) + 120) * 1000,
    onLine: (line) => {
      if (line.startsWith('START ')) cpuAtStart = cpuSeconds(daemonPid);
      const m = /^RESULT (\S+) (\S+) (.*)$/.exec(line);
      if (!m) return;
      const measured = parseTerse(m[3]!, m[2]!);
      const sample = { ...measured, cpuUsPerIo: ((cpuSeconds(daemonPid) - cpuAtStart) * 1e6) / (measured.iops * runtime) };
      const key = `${m[1]}_${m[2]}`;
      results.set(key, [...(results.get(key) ?? []), sample]);
      console.log(`${m[1]!.padEnd(5)} ${m[2]!.padEnd(10)} ${Math.round(sample.iops).toString().padStart(6)} IOPS  p99 ${sample.p99us} us  fastblockd CPU ${sample.cpuUsPerIo.toFixed(1)} us/IO`);
    },
  });
  const done = await guest.done;
  if (done.exitCode !== 0) throw new Error(`guest failed (${done.exitCode}):\n${done.console.slice(-3000)}`);
} finally {
  await daemon.stop();
  await cluster?.stop();
  if (clusterDir) rmSync(clusterDir, { recursive: true, force: true });
}

const figures: Record<string, number> = {};
const ratios: Record<string, number> = {};
const best = (key: string): Sample => {
  const samples = results.get(key) ?? [];
  if (samples.length === 0) throw new Error(`no fio result for ${key}`);
  return samples.reduce((a, b) => (b.iops > a.iops ? b : a));
};
for (const rw of JOBS) {
  const nvme = best(`nvme_${rw}`);
  const nbd = best(`nbd_${rw}`);
  figures[`nvmf_${rw}_4k_qd16_iops`] = Math.round(nvme.iops);
  figures[`nbd_${rw}_4k_qd16_iops`] = Math.round(nbd.iops);
  figures[`nvmf_${rw}_4k_qd16_p99_us`] = nvme.p99us;
  figures[`nbd_${rw}_4k_qd16_p99_us`] = nbd.p99us;
  figures[`nvmf_${rw}_4k_qd16_server_cpu_us_per_io`] = Number(nvme.cpuUsPerIo.toFixed(1));
  figures[`nbd_${rw}_4k_qd16_server_cpu_us_per_io`] = Number(nbd.cpuUsPerIo.toFixed(1));
  ratios[`${rw}_4k_qd16_iops`] = Number((nvme.iops / nbd.iops).toFixed(3));
  ratios[`${rw}_4k_qd16_p99`] = Number((nbd.p99us / nvme.p99us).toFixed(3));
  ratios[`${rw}_4k_qd16_server_cpu`] = Number((nbd.cpuUsPerIo / nvme.cpuUsPerIo).toFixed(3));
}
console.log(JSON.stringify({ bench: opts.backend === 'cluster' ? 'nvmf' : `nvmf-${opts.backend}`, figures, ratios }));
