/**
 * The process the vhost VM suites and bench/vhost start: a VhostFrontend over a test block target,
 * QEMU's peer on a unix socket. A separate process so a test can SIGKILL it and start it again.
 *
 *   node --import tsx test/vhost/daemon.ts '<json DaemonSpec>'
 *
 * Prints "READY" once every controller listens. Reads JSON lines on stdin for runtime management
 * ({"op":"create","volume","socket","queues","cache"?} | {"op":"rm","socket"} | {"op":"ls"}, whose
 * result has each controller's details: cache mode and write-back figures, and with delayMs
 * {"op":"hold"} | {"op":"held"}) and answers each with one JSON line.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlockVolume, BlockVolumeProvider } from '../../kernel/contracts/block.js';
import { VHOST_CONFIG_DEFAULTS, type CacheMode } from '../../plugins/frontend-vhost/config.js';
import { VhostFrontend } from '../../plugins/frontend-vhost/frontend.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';
import { FileVolumeProvider } from './file-volume.js';

export interface DaemonSpec {
  /** "file": volumes on files (survive a SIGKILL); "memory": the in-memory target. */
  readonly target: 'file' | 'memory';
  /** name -> file path (file target) or size in bytes (memory target). */
  readonly volumes: Readonly<Record<string, string | number>>;
  readonly controllers: readonly { volume: string; socket: string; queues: number; cache?: CacheMode }[];
  /** Added to every read and write: keeps requests in flight long enough to be caught by a SIGKILL. */
  readonly delayMs?: number;
  /** Write-back logs of writeback controllers (default: a directory of this process, gone with it). */
  readonly writeBackDir?: string;
  readonly writeBackMiB?: number;
}

const spec = JSON.parse(process.argv[2] ?? '') as DaemonSpec;
const log = pino({ level: process.env.VHOST_LOG_LEVEL ?? 'info' }, pino.destination(2));

let provider: BlockVolumeProvider;
if (spec.target === 'file') {
  provider = new FileVolumeProvider(new Map(Object.entries(spec.volumes).map(([name, path]) => [name, String(path)])));
} else {
  const memory = new MemoryVolumeProvider();
  for (const [name, size] of Object.entries(spec.volumes)) memory.create(name, Number(size));
  provider = memory;
}

let holding = false;
let held = 0;
if (spec.delayMs) provider = delayed(provider, spec.delayMs);

const writeBackDir = spec.writeBackDir ?? join(tmpdir(), `fastblock-vhost-daemon-${process.pid}`);
const frontend = new VhostFrontend(
  provider,
  { ...VHOST_CONFIG_DEFAULTS, defaultQueues: 1, writeBackDir, writeBackMiB: spec.writeBackMiB ?? VHOST_CONFIG_DEFAULTS.writeBackMiB },
  log,
);
const cacheOption = (cache: string | undefined): Record<string, string> => (cache === undefined ? {} : { cache });
for (const c of spec.controllers) await frontend.createExport({ volume: c.volume, options: { socket: c.socket, queues: c.queues, ...cacheOption(c.cache) } });
process.stdout.write('READY\n');

for await (const line of createInterface({ input: process.stdin })) {
  try {
    const op = JSON.parse(line) as { op: string; volume?: string; socket?: string; queues?: number; cache?: string };
    let result: unknown;
    if (op.op === 'create') {
      result = await frontend.createExport({ volume: op.volume ?? '', options: { socket: op.socket ?? '', queues: op.queues ?? 1, ...cacheOption(op.cache) } });
    } else if (op.op === 'rm') result = await frontend.removeExport(op.socket ?? '');
    else if (op.op === 'ls') result = frontend.listExports();
    else if (op.op === 'hold') holding = true;
    else if (op.op === 'held') result = held;
    else throw new Error(`unknown op ${op.op}`);
    process.stdout.write(`${JSON.stringify({ ok: true, result: result ?? null })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: (err as Error).message })}\n`);
  }
}
await frontend.stop();
if (spec.writeBackDir === undefined) rmSync(writeBackDir, { recursive: true, force: true });

/**
 * Every read and write waits `ms`; after {"op":"hold"} writes never finish (they stay in flight
 * until the test kills the daemon), and {"op":"held"} counts them.
 */
function delayed(inner: BlockVolumeProvider, ms: number): BlockVolumeProvider {
  return {
    list: () => inner.list(),
    async open(name: string): Promise<BlockVolume> {
      const volume = await inner.open(name);
      return Object.assign(Object.create(volume) as BlockVolume, {
        read: async (offset: number, length: number, into?: Uint8Array) => (await sleep(ms), volume.read(offset, length, into)),
        write: async (offset: number, data: readonly Uint8Array[]) => {
          await sleep(ms);
          if (holding) {
            held++;
            await new Promise(() => {});
          }
          return volume.write(offset, data);
        },
      });
    },
  };
}
