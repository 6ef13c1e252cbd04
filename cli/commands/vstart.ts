/**
 * `fastblock vstart`: a whole cluster on this machine in one command — an embedded-store monitor,
 * three OSDs on files, a gateway exporting the image over NBD, vhost-user-blk and NVMe/TCP, a pool
 * of size 3 and a 1 GiB image — in the foreground
 * until Ctrl-C, or with --detach until `fastblock vstart stop`. Restarting on the same directory
 * keeps the data.
 */
import { Command, Option } from 'commander';
import { jsonOption, output } from '../daemon-client.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { qemuOptions } from '../../plugins/frontend-vhost/qemu-options.js';
import { LocalCluster, stopDetached } from './vstart-cluster.js';

interface VstartFlags {
  dir: string;
  detach?: boolean;
  osds: number;
  imageSize: number;
  nvmfPort: number;
  portBase?: number;
  json?: boolean;
}

function positive(name: string) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value <= 0) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${name} ${text} is not a positive integer`, { [name]: text });
    return value;
  };
}

/** /metrics of the monitor; the gateway's on the next port, OSD i's on this + 10 + i (vstart-cluster.ts). */
const DEFAULT_METRICS_PORT = 9280;

const dirOption = () => new Option('-d, --dir <path>', 'directory of the cluster (data, logs, vstart.json)').default('./vstart-data');

function summary(cluster: LocalCluster, detached: boolean): Record<string, unknown> {
  const uri = cluster.nbdUri;
  const socket = cluster.vhostSocket;
  const nvmf = cluster.nvmf;
  return {
    dir: cluster.dir,
    monitor: cluster.monitorAddress,
    nbd: uri,
    vhostSocket: socket,
    qemuVhostOptions: socket ? qemuOptions(socket, { queues: 2, memory: '1G' }) : undefined,
    nvmf: nvmf ? `${nvmf.address}:${nvmf.port} ${nvmf.nqn}` : undefined,
    nvmeConnect: nvmf ? `nvme connect -t tcp -a ${nvmf.address} -s ${nvmf.port} -n ${nvmf.nqn}` : undefined,
    osds: cluster.state.osds,
    metrics: cluster.metricsUrls,
    pids: Object.fromEntries([...cluster.daemons].map(([name, d]) => [name, d.pid])),
    tryQemuImg: `qemu-img info ${uri}`,
    tryFio: `fio --name=try --ioengine=nbd --uri=${uri} --rw=randwrite --bs=4k --iodepth=16 --size=256M --verify=crc32c`,
    stop: detached ? `fastblock vstart stop --dir ${cluster.dir}` : 'Ctrl-C',
  };
}

function human(s: Record<string, unknown>): string {
  return [
    `fastblock cluster up in ${s.dir}`,
    `  monitor  ${s.monitor}`,
    `  OSDs     ${s.osds}`,
    `  NBD      ${s.nbd}`,
    ...(s.vhostSocket ? [`  vhost    ${s.vhostSocket}`] : []),
    ...(s.nvmf ? [`  NVMe/TCP ${s.nvmf}`] : []),
    ...Object.entries(s.metrics as Record<string, string>).map(([name, url], i) => `  ${i === 0 ? 'metrics ' : '        '} ${name.padEnd(8)} ${url}`),
    '',
    'Try:',
    `  ${s.tryQemuImg}`,
    `  ${s.tryFio}`,
    ...(s.qemuVhostOptions ? ['', 'Attach to a QEMU VM as a virtio disk (guest RAM must be this shared backend):', `  qemu-system-x86_64 ... ${s.qemuVhostOptions}`] : []),
    ...(s.nvmeConnect ? ['', 'Attach from a Linux host with the nvme-tcp module:', `  ${s.nvmeConnect}`] : []),
    '',
    `Stop: ${s.stop}`,
  ].join('\n');
}

export function registerVstart(program: Command): void {
  const vstart = program
    .command('vstart')
    .description('run a local cluster: monitor, 3 OSDs, a gateway (NBD, vhost-user-blk, NVMe/TCP), pool rbd (size 3) with a 1 GiB image rbd/disk')
    .addOption(dirOption())
    .option('--detach', 'leave the cluster running in the background and exit')
    .addOption(new Option('--osds <n>', 'number of OSDs').default(3).argParser(positive('--osds')))
    .addOption(new Option('--image-size <bytes>', 'size of rbd/disk when it is created').default(1024 ** 3).argParser(positive('--image-size')))
    .addOption(new Option('--nvmf-port <port>', 'TCP port of the NVMe/TCP target (kept on restart)').default(4420).argParser(positive('--nvmf-port')))
    .addOption(
      new Option('--port-base <port>', 'move every port to run beside another cluster: monitor P, NBD P+9, NVMe/TCP P+20, /metrics from P+30, OSDs from P+100 (kept on restart)').argParser(
        positive('--port-base'),
      ),
    )
    .addOption(jsonOption())
    .action(async (flags: VstartFlags) => {
      const cluster = await LocalCluster.start({
        dir: flags.dir,
        osds: flags.osds,
        detached: flags.detach,
        image: { name: 'disk', sizeBytes: flags.imageSize },
        frontends: { vhost: true, nvmf: true },
        ...(flags.portBase
          ? { monitorPort: flags.portBase, nbdPort: flags.portBase + 9, nvmfPort: flags.portBase + 20, metricsBasePort: flags.portBase + 30, osdBasePort: flags.portBase + 100 }
          : { nvmfPort: flags.nvmfPort, metricsBasePort: DEFAULT_METRICS_PORT }),
      });
      output(flags.json, summary(cluster, flags.detach ?? false), human);
      if (flags.detach) {
        // The daemons are detached; only our monitor connection keeps us alive.
        await cluster.release();
        return;
      }
      await new Promise<void>((resolve) => {
        const onSignal = () => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          resolve();
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
      if (!flags.json) process.stdout.write('\nstopping the cluster...\n');
      await cluster.stop();
      if (!flags.json) process.stdout.write('stopped; the data stays in ' + cluster.dir + '\n');
    });

  vstart
    .command('stop')
    .description('stop a cluster started with --detach (give --dir as to vstart)')
    .addOption(jsonOption())
    .action(async (_flags: unknown, command: Command) => {
      // --dir belongs to `vstart` itself, which parses it wherever it appears on the line.
      const flags = command.optsWithGlobals<{ dir: string; json?: boolean }>();
      const stopped = await stopDetached(flags.dir);
      output(flags.json, { stopped }, (v) => `stopped ${v.stopped.join(', ') || 'nothing (no daemons were running)'}`);
    });
}
