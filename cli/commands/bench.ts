/**
 * `fastblock bench`: block_bench against an image through the client library (no frontend in
 * the way): a read/write mix at a block size and queue depth for a duration, optionally
 * verifying every read, with live progress; prints IOPS, bandwidth and latency percentiles.
 *
 *   fastblock bench --image rbd/disk --rw randwrite --bs 4k --iodepth 32 --runtime 30
 */
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import { runBlockBench, type BenchResult } from '../../client/block-bench.js';
import { connect } from '../../client/connect.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { jsonOption, output } from '../daemon-client.js';

const MODES = {
  randwrite: { readPercent: 0, pattern: 'random' },
  randread: { readPercent: 100, pattern: 'random' },
  randrw: { readPercent: 50, pattern: 'random' },
  write: { readPercent: 0, pattern: 'sequential' },
  read: { readPercent: 100, pattern: 'sequential' },
} as const;
type Mode = keyof typeof MODES;

interface BenchFlags {
  monitors: string;
  image: string;
  rw: Mode;
  rwmixread?: number;
  bs: number;
  iodepth: number;
  runtime: number;
  span?: number;
  verify?: boolean;
  json?: boolean;
}

/** "4k", "128K", "1m", "4096" -> bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+)([kmg]?)(i?b)?$/i.exec(text.trim());
  if (!match) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `"${text}" is not a size (e.g. 4k, 128K, 1M)`, { text });
  const scale = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(match[1]) * scale;
}

function integer(name: string, min: number, max: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${name} ${text} is not an integer in [${min}, ${max}]`, { [name]: text });
    return value;
  };
}

function human(r: BenchResult & { image: string; rw: string; bs: number; iodepth: number }): string {
  const lat = (name: string, l: BenchResult['latency'] | undefined) =>
    l ? `  ${name.padEnd(6)} p50 ${l.p50Us} us  p99 ${l.p99Us} us  p99.9 ${l.p999Us} us  mean ${l.meanUs} us  max ${l.maxUs} us` : undefined;
  return [
    `${r.image}: ${r.rw} bs=${r.bs} iodepth=${r.iodepth}, ${r.seconds} s`,
    `  IOPS   ${r.iops}   bandwidth ${r.bandwidthMiBps} MiB/s   reads ${r.reads}  writes ${r.writes}${r.verifiedBlocks ? `  verified ${r.verifiedBlocks}` : ''}`,
    lat('all', r.latency),
    lat('read', r.readLatency),
    lat('write', r.writeLatency),
  ]
    .filter((line): line is string => line !== undefined)
    .join('\n');
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('block_bench: drive an image through the client library and report IOPS, bandwidth, latency')
    .addOption(new Option('-m, --monitors <list>', 'monitor addresses, comma-separated').env('FASTBLOCK_MONITORS').default('127.0.0.1:7700'))
    .requiredOption('-i, --image <pool/image>', 'the image to drive (its contents are overwritten by write modes)')
    .addOption(new Option('--rw <mode>', 'workload').choices(Object.keys(MODES)).default('randwrite'))
    .addOption(new Option('--rwmixread <percent>', 'reads in percent (overrides --rw mix)').argParser(integer('--rwmixread', 0, 100)))
    .addOption(new Option('--bs <size>', 'block size (4k, 128k, ...)').default(4096, '4k').argParser(parseSize))
    .addOption(new Option('--iodepth <n>', 'I/Os in flight').default(32).argParser(integer('--iodepth', 1, 4096)))
    .addOption(new Option('--runtime <seconds>', 'duration').default(10).argParser(integer('--runtime', 1, 86_400)))
    .addOption(new Option('--span <size>', 'bytes of the image to use from offset 0 (default: all)').argParser(parseSize))
    .option('--verify', 'stamp writes and check every read of a written block')
    .addOption(jsonOption())
    .action(async (flags: BenchFlags) => {
      const mode = MODES[flags.rw];
      const client = await connect({ monitors: flags.monitors.split(',').map((s) => s.trim()).filter(Boolean), name: 'fastblock-bench', maxInFlight: Math.max(128, flags.iodepth * 2) });
      try {
        const image = await client.openImage(flags.image);
        const bar = flags.json || !process.stdout.isTTY
          ? undefined
          : new cliProgress.SingleBar({ format: ' {bar} {percentage}% | {iops} IOPS | {mib} MiB/s | {eta_formatted} left', hideCursor: true }, cliProgress.Presets.shades_classic);
        bar?.start(flags.runtime, 0, { iops: 0, mib: 0 });
        const result = await runBlockBench(image, {
          readPercent: flags.rwmixread ?? mode.readPercent,
          pattern: mode.pattern,
          blockSize: flags.bs,
          queueDepth: flags.iodepth,
          durationMs: flags.runtime * 1000,
          verify: flags.verify ?? false,
          span: flags.span,
          progressIntervalMs: 500,
          onProgress: (p) => {
            const seconds = p.elapsedMs / 1000;
            bar?.update(Math.min(flags.runtime, Math.round(seconds)), { iops: Math.round(p.ops / seconds), mib: (p.bytes / seconds / 1048576).toFixed(1) });
          },
        });
        bar?.update(flags.runtime);
        bar?.stop();
        await image.close();
        output(flags.json, { image: flags.image, rw: flags.rw, bs: flags.bs, iodepth: flags.iodepth, ...result }, human);
      } finally {
        await client.close();
      }
    });
}
