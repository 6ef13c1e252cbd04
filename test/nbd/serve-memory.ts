/**
 * A test NBD gateway: NbdFrontend over in-memory volumes, in its own process so real clients
 * (qemu-io, nbdcopy, fio, nbdfuse, a guest kernel) talk to it over TCP exactly as to fastblockd.
 *
 *   node --import tsx test/nbd/serve-memory.ts --volume pool/a:64M --volume pool/ro:1M:ro [--port 0]
 *       [--jitter-ms 2] [--fault pool/a:1M:64K:NO_SPACE]
 *
 * stdout: one JSON line {"port": N} when listening; on SIGUSR2 one JSON line of volume counters
 * ({"stats": {...}}), read by tests that check what reached the volume. Logs (pino JSON) go to
 * stderr. SIGTERM stops the frontend cleanly (in-flight requests answered) and exits 0.
 */
import { Command } from 'commander';
import pino from 'pino';
import type { BlockVolume, BlockVolumeProvider } from '../../kernel/contracts/block.js';
import type { ErrorCode } from '../../kernel/errors.js';
import { NBD_CONFIG_DEFAULTS } from '../../plugins/frontend-nbd/config.js';
import { NbdFrontend } from '../../plugins/frontend-nbd/frontend.js';
import { MemoryVolumeProvider, type MemoryVolume } from '../support/memory-volume.js';
import { DelayedVolume } from './delayed-volume.js';
import { FaultyVolume } from './faulty-volume.js';

const SIZE_UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

function parseSize(text: string): number {
  const match = /^(\d+)([KMG]?)$/.exec(text);
  if (!match) throw new Error(`bad size ${text}`);
  return Number(match[1]) * SIZE_UNITS[match[2]!]!;
}

const program = new Command()
  .option('--volume <name:size[:ro]>', 'an in-memory volume to create and export', (v: string, all: string[]) => [...all, v], [] as string[])
  .option('--port <port>', 'listen port', '0')
  .option('--handshake-timeout <ms>', 'negotiation deadline', '10000')
  .option('--max-in-flight <n>', 'requests in flight per connection', String(NBD_CONFIG_DEFAULTS.maxInFlight))
  .option('--default-export <name>', 'export for the empty name', '')
  .option('--no-dynamic', 'serve only the --volume exports')
  .option('--jitter-ms <ms>', 'complete each volume operation after a random delay up to this (out-of-order replies)', '0')
  .option('--fault <name:offset:length:code>', 'operations touching the range fail with this FastblockError code', (v: string, all: string[]) => [...all, v], [] as string[])
  .parse();
const opts = program.opts<{ volume: string[]; port: string; handshakeTimeout: string; maxInFlight: string; defaultExport: string; dynamic: boolean; jitterMs: string; fault: string[] }>();
const jitterMs = Number(opts.jitterMs);

const log = pino({ level: process.env.NBD_LOG_LEVEL ?? 'info' }, pino.destination(2));
const memory = new MemoryVolumeProvider();
/** Every handle the frontend opened, so SIGUSR2 can report what reached the volumes. */
const opened: MemoryVolume[] = [];
const provider: BlockVolumeProvider = {
  async open(name) {
    const handle = await memory.open(name);
    opened.push(handle);
    let volume: BlockVolume = handle;
    const faults = opts.fault.map((f) => f.split(':')).filter(([volumeName]) => volumeName === name);
    if (faults.length > 0) {
      volume = new FaultyVolume(volume, faults.map(([, offset, length, code]) => ({ offset: parseSize(offset!), length: parseSize(length!), code: code as ErrorCode })));
    }
    return jitterMs > 0 ? new DelayedVolume(volume, jitterMs) : volume;
  },
  list: () => memory.list(),
};

const exports: string[] = [];
for (const spec of opts.volume) {
  const [name, size, mode] = spec.split(':');
  memory.create(name!, parseSize(size!));
  exports.push(mode === 'ro' ? `${name}:ro` : name!);
}

const frontend = new NbdFrontend(
  provider,
  {
    ...NBD_CONFIG_DEFAULTS,
    port: Number(opts.port),
    exports,
    dynamicExports: opts.dynamic,
    defaultExport: opts.defaultExport,
    handshakeTimeoutMs: Number(opts.handshakeTimeout),
    maxInFlight: Number(opts.maxInFlight),
  },
  log,
);
const address = await frontend.start();
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);

process.on('SIGUSR2', async () => {
  const stats: Record<string, Record<string, number>> = {};
  for (const name of await memory.list()) {
    const volume = await memory.open(name);
    const total: Record<string, number> = { allocatedBytes: volume.allocatedBytes() };
    for (const handle of opened.filter((h) => h.name === name)) {
      for (const [key, value] of Object.entries(handle.stats)) total[key] = (total[key] ?? 0) + value;
    }
    stats[name] = total;
  }
  process.stdout.write(`${JSON.stringify({ stats })}\n`);
});

process.once('SIGTERM', async () => {
  await frontend.stop();
  log.info('stopped');
  log.flush();
  process.exit(0);
});
