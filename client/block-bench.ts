/**
 * block_bench: a load generator for any BlockVolume (an image through the client library, or a
 * frontend's test target). A fixed number of I/Os in flight (queue depth), each a read or a write
 * by the read mix, random or sequential offsets aligned to the block size, for a duration.
 *
 * Verify mode stamps every written block with (offset, generation) and checks every read against
 * the last acknowledged generation of that block; a block is never read and written at once, so a
 * mismatch is a real error, not a race of the benchmark.
 */
import type { BlockVolume } from '../kernel/contracts/block.js';
import { ErrorCode, FastblockError } from '../kernel/errors.js';

export interface BenchOptions {
  /** Percentage of reads, 0..100. */
  readonly readPercent: number;
  readonly blockSize: number;
  readonly queueDepth: number;
  readonly durationMs: number;
  readonly pattern: 'random' | 'sequential';
  readonly verify: boolean;
  /** Bytes of the volume to use from offset 0; default the whole volume. */
  readonly span?: number;
  /** Called about every `progressIntervalMs` with the totals so far. */
  readonly onProgress?: (progress: BenchProgress) => void;
  readonly progressIntervalMs?: number;
}

export interface BenchProgress {
  readonly elapsedMs: number;
  readonly ops: number;
  readonly bytes: number;
}

export interface LatencySummary {
  readonly p50Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly meanUs: number;
  readonly maxUs: number;
}

export interface BenchResult {
  readonly seconds: number;
  readonly reads: number;
  readonly writes: number;
  readonly iops: number;
  readonly bandwidthMiBps: number;
  readonly latency: LatencySummary;
  readonly readLatency?: LatencySummary;
  readonly writeLatency?: LatencySummary;
  readonly verifiedBlocks: number;
}

function stamp(block: Uint8Array, offset: number, generation: number): void {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  for (let at = 0; at + 16 <= block.length; at += 16) {
    view.setFloat64(at, offset, true);
    view.setUint32(at + 8, generation, true);
    view.setUint32(at + 12, (at * 2654435761) >>> 0, true);
  }
}

function summarize(samples: Float64Array, count: number): LatencySummary {
  if (count === 0) return { p50Us: 0, p99Us: 0, p999Us: 0, meanUs: 0, maxUs: 0 };
  const sorted = samples.slice(0, count).sort();
  const at = (q: number) => sorted[Math.min(count - 1, Math.floor(q * count))];
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i];
  const round = (us: number) => Math.round(us * 10) / 10;
  return { p50Us: round(at(0.5)), p99Us: round(at(0.99)), p999Us: round(at(0.999)), meanUs: round(sum / count), maxUs: round(sorted[count - 1]) };
}

class Samples {
  values = new Float64Array(1 << 16);
  count = 0;
  add(us: number): void {
    if (this.count === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.count++] = us;
  }
}

export async function runBlockBench(volume: BlockVolume, options: BenchOptions): Promise<BenchResult> {
  const { blockSize, queueDepth } = options;
  const span = Math.floor(Math.min(options.span ?? volume.size, volume.size) / blockSize) * blockSize;
  if (blockSize <= 0 || blockSize % 512 !== 0 || span < blockSize) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `block size ${blockSize} does not fit a span of ${span} bytes`, { blockSize, span });
  }
  if (!(queueDepth >= 1) || options.readPercent < 0 || options.readPercent > 100) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'queue depth must be >= 1 and the read mix within 0..100', { queueDepth, readPercent: options.readPercent });
  }
  const blocks = span / blockSize;
  const generations = options.verify ? new Uint32Array(blocks) : undefined;
  const busy = new Uint8Array(blocks);
  const all = new Samples();
  const reads = new Samples();
  const writes = new Samples();
  let nextSequential = 0;
  let bytes = 0;
  let verifiedBlocks = 0;
  const started = performance.now();
  const deadline = started + options.durationMs;
  // Progress is reported from the I/O loop, not a timer: a fast volume may never yield to timers.
  const progressEvery = options.progressIntervalMs ?? 500;
  let lastProgress = started;

  const pick = (): number => {
    for (let tries = 0; ; tries++) {
      const block = options.pattern === 'sequential' ? nextSequential++ % blocks : Math.floor(Math.random() * blocks);
      if (!busy[block] || tries > blocks) return block;
    }
  };

  async function worker(): Promise<void> {
    const buffer = new Uint8Array(blockSize);
    while (performance.now() < deadline) {
      const block = pick();
      busy[block] = 1;
      const offset = block * blockSize;
      const isRead = Math.random() * 100 < options.readPercent;
      const t0 = performance.now();
      if (isRead) {
        await volume.read(offset, blockSize, buffer);
        if (generations && generations[block] !== 0) {
          const expected = new Uint8Array(blockSize);
          stamp(expected, offset, generations[block]);
          if (Buffer.compare(expected, buffer) !== 0) {
            throw new FastblockError(ErrorCode.CORRUPT, `verify failed at offset ${offset}: expected generation ${generations[block]}`, { offset, generation: generations[block] });
          }
          verifiedBlocks++;
        }
      } else {
        const generation = generations ? generations[block] + 1 : 1;
        if (generations) stamp(buffer, offset, generation);
        await volume.write(offset, [buffer]);
        if (generations) generations[block] = generation;
      }
      const us = (performance.now() - t0) * 1000;
      all.add(us);
      (isRead ? reads : writes).add(us);
      bytes += blockSize;
      busy[block] = 0;
      const now = performance.now();
      if (options.onProgress && now - lastProgress >= progressEvery) {
        lastProgress = now;
        options.onProgress({ elapsedMs: now - started, ops: all.count, bytes });
      }
    }
  }

  await Promise.all(Array.from({ length: queueDepth }, worker));
  const seconds = (performance.now() - started) / 1000;
  return {
    seconds: Math.round(seconds * 1000) / 1000,
    reads: reads.count,
    writes: writes.count,
    iops: Math.round(all.count / seconds),
    bandwidthMiBps: Math.round((bytes / seconds / 1048576) * 100) / 100,
    latency: summarize(all.values, all.count),
    readLatency: reads.count ? summarize(reads.values, reads.count) : undefined,
    writeLatency: writes.count ? summarize(writes.values, writes.count) : undefined,
    verifiedBlocks,
  };
}
