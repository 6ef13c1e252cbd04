/**
 * A test NBD gateway: NbdFrontend over in-memory volumes, in its own process so real clients
 * (qemu-io, nbdcopy, fio, nbdfuse, a guest kernel) talk to it over TCP exactly as to fastblockd.
 *
 *   node --import tsx test/nbd/serve-memory.ts --volume pool/a:64M --volume pool/ro:1M:ro [--port 0]
 *       [--jitter-ms 2] [--fault pool/a:1M:64K:NO_SPACE]
 *       [--volume pool/wb:16M:writeback] [--file 'pool/f:writeback=/tmp/x/f.img'] [--cache writeback]
 *       [--write-back-dir DIR] [--write-back-mib 16] [--write-back-hold-ms 0] [--hold-writes] [--control]
 *
 * A --volume's suffixes after the size are its export entry's (":ro", ":writeback"...). A --file
 * volume is a file the test created (test/vhost/file-volume.ts): it outlives a SIGKILL of this
 * process, which the write-back suite needs; left of '=' is its export entry.
 *
 * stdout: one JSON line {"port": N} when listening; on SIGUSR2 one JSON line of volume counters
 * ({"stats": {...}}), read by tests that check what reached the volume. Logs (pino JSON) go to
 * stderr. SIGTERM stops the frontend cleanly (in-flight requests answered, write-back logs drained)
 * and exits 0.
 *
 * --hold-writes: writes, write-zeroes and discards reaching a volume (a writeback export's
 * write-back) wait until released. --control reads commands on stdin, one a line, and answers each
 * with one stdout line {"reply": ...}: "hold" (hold from now on), "release" (let held operations go
 * and stop holding; replies with how many were held), "held" (how many wait now), "ls" (listExports).
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import pino from 'pino';
import type { BlockVolume, BlockVolumeProvider, BlockWriteOptions } from '../../kernel/contracts/block.js';
import type { ErrorCode } from '../../kernel/errors.js';
import { CACHE_MODES, NBD_CONFIG_DEFAULTS, isCacheMode } from '../../plugins/frontend-nbd/config.js';
import { NbdFrontend } from '../../plugins/frontend-nbd/frontend.js';
import { MemoryVolumeProvider, type MemoryVolume } from '../support/memory-volume.js';
import { FileVolume } from '../vhost/file-volume.js';
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
  .option('--file <entry=path>', 'a file-backed volume to export (entry: pool/image[:suffixes])', (v: string, all: string[]) => [...all, v], [] as string[])
  .option('--cache <mode>', 'nbd.cache: mode of exports that name none', NBD_CONFIG_DEFAULTS.cache)
  .option('--write-back-dir <dir>', 'nbd.writeBackDir (default: a directory of this process)')
  .option('--write-back-mib <n>', 'nbd.writeBackMiB', String(NBD_CONFIG_DEFAULTS.writeBackMiB))
  .option('--write-back-hold-ms <ms>', 'nbd.writeBackHoldMs', String(NBD_CONFIG_DEFAULTS.writeBackHoldMs))
  .option('--hold-writes', 'writes reaching the volumes wait until released (--control)')
  .option('--control', 'read commands on stdin: hold, release, held, ls')
  .parse();
const opts = program.opts<{
  volume: string[];
  port: string;
  handshakeTimeout: string;
  maxInFlight: string;
  defaultExport: string;
  dynamic: boolean;
  jitterMs: string;
  fault: string[];
  file: string[];
  cache: string;
  writeBackDir?: string;
  writeBackMib: string;
  writeBackHoldMs: string;
  holdWrites?: boolean;
  control?: boolean;
}>();
if (!isCacheMode(opts.cache)) throw new Error(`--cache must be one of ${CACHE_MODES.join(', ')}`);
const jitterMs = Number(opts.jitterMs);

const log = pino({ level: process.env.NBD_LOG_LEVEL ?? 'info' }, pino.destination(2));
const memory = new MemoryVolumeProvider();
/** Every handle the frontend opened, so SIGUSR2 can report what reached the volumes. */
const opened: MemoryVolume[] = [];
const files = new Map<string, string>();
const provider: BlockVolumeProvider = {
  async open(name) {
    const file = files.get(name);
    if (file !== undefined) return held(await FileVolume.open(name, file));
    const handle = await memory.open(name);
    opened.push(handle);
    let volume: BlockVolume = held(handle);
    const faults = opts.fault.map((f) => f.split(':')).filter(([volumeName]) => volumeName === name);
    if (faults.length > 0) {
      volume = new FaultyVolume(volume, faults.map(([, offset, length, code]) => ({ offset: parseSize(offset!), length: parseSize(length!), code: code as ErrorCode })));
    }
    return jitterMs > 0 ? new DelayedVolume(volume, jitterMs) : volume;
  },
  list: async () => [...(await memory.list()), ...files.keys()],
};

let holding = opts.holdWrites === true;
let waiting: Array<() => void> = [];

/** Writes wait while `holding` (until "release"); reads and flushes go on. Only with --hold-writes or --control. */
function held(volume: BlockVolume): BlockVolume {
  if (!opts.holdWrites && !opts.control) return volume;
  const gate = (): Promise<void> | undefined => (holding ? new Promise<void>((resolve) => waiting.push(resolve)) : undefined);
  return Object.assign(Object.create(volume) as BlockVolume, {
    write: (offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions) => gate()?.then(() => volume.write(offset, data, options)) ?? volume.write(offset, data, options),
    writeZeroes: (offset: number, length: number, options?: BlockWriteOptions) =>
      gate()?.then(() => volume.writeZeroes(offset, length, options)) ?? volume.writeZeroes(offset, length, options),
    discard: (offset: number, length: number) => gate()?.then(() => volume.discard(offset, length)) ?? volume.discard(offset, length),
  });
}

const exports: string[] = [];
for (const spec of opts.volume) {
  const [name, size, ...suffixes] = spec.split(':');
  memory.create(name!, parseSize(size!));
  exports.push([name!, ...suffixes].join(':'));
}
for (const spec of opts.file) {
  const at = spec.indexOf('=');
  const entry = spec.slice(0, at);
  files.set(entry.split(':')[0]!, spec.slice(at + 1));
  exports.push(entry);
}
const writeBackDir = opts.writeBackDir ?? join(tmpdir(), `fastblock-nbd-serve-${process.pid}`);

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
    cache: opts.cache,
    writeBackDir,
    writeBackMiB: Number(opts.writeBackMib),
    writeBackHoldMs: Number(opts.writeBackHoldMs),
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

if (opts.control) {
  createInterface({ input: process.stdin }).on('line', (line) => {
    let reply: unknown;
    if (line === 'hold') holding = true;
    else if (line === 'release') {
      holding = false;
      const wake = waiting;
      waiting = [];
      for (const go of wake) go();
      reply = wake.length;
    } else if (line === 'held') reply = waiting.length;
    else if (line === 'ls') reply = frontend.listExports();
    else reply = { error: `unknown command ${line}` };
    process.stdout.write(`${JSON.stringify({ reply: reply ?? null })}\n`);
  });
}

process.once('SIGTERM', async () => {
  await frontend.stop();
  if (opts.writeBackDir === undefined) rmSync(writeBackDir, { recursive: true, force: true });
  log.info('stopped');
  log.flush();
  process.exit(0);
});
