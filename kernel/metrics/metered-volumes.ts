/**
 * Requests and bytes per export of a frontend (NBD, vhost-user-blk, NVMe/TCP), counted where every
 * frontend meets the cluster: the BlockVolume it was given. A frontend wraps its provider once
 *
 *   const provider = meteredVolumes(container.resolve(TOKENS.BlockVolumeProvider), registry, 'nbd');
 *
 * and each I/O costs an array increment and an addition; the labelled metrics are filled from
 * those numbers when /metrics is scraped. Requests are counted as issued (an I/O that fails is
 * still counted there); those the image failed are counted again as errors, by op, as the host
 * saw them fail (the frontend reports each to its host in its own protocol).
 */
import { Counter } from 'prom-client';
import type { BlockVolume, BlockVolumeProvider, BlockWrite, BlockWriteOptions } from '../contracts/block.js';
import type { MetricsRegistry } from '../contracts/metrics.js';
import { registerReadCacheMetrics } from './read-cache-metrics.js';
import { registerWriteBackMetrics } from './write-back-metrics.js';

const OPS = ['read', 'write', 'flush', 'discard', 'write_zeroes'] as const;
const [READ, WRITE, FLUSH, DISCARD, WRITE_ZEROES] = [0, 1, 2, 3, 4];

class ExportCounts {
  readonly requests = new Float64Array(OPS.length);
  readonly errors = new Float64Array(OPS.length);
  readBytes = 0;
  writtenBytes = 0;
}

/** One per registry: every frontend of a daemon shares the metric names, told apart by a label. */
class FrontendMeters {
  /** frontend -> export -> counts. An export removed keeps its counts: counters never go back. */
  private readonly byFrontend = new Map<string, Map<string, ExportCounts>>();

  constructor(registry: MetricsRegistry) {
    const each = (visit: (frontend: string, name: string, counts: ExportCounts) => void): void => {
      for (const [frontend, exports] of this.byFrontend) for (const [name, counts] of exports) visit(frontend, name, counts);
    };
    /** A counter per export and op, read from one of ExportCounts' per-op arrays. */
    const perOp = (name: string, help: string, of: (counts: ExportCounts) => Float64Array): void => {
      new Counter({
        name,
        help,
        labelNames: ['frontend', 'export', 'op'],
        registers: [registry],
        collect() {
          this.reset();
          each((frontend, exportName, counts) => OPS.forEach((op, i) => this.inc({ frontend, export: exportName, op }, of(counts)[i])));
        },
      });
    };
    /** A counter per export, read from one of ExportCounts' totals. */
    const perExport = (name: string, help: string, of: (counts: ExportCounts) => number): void => {
      new Counter({
        name,
        help,
        labelNames: ['frontend', 'export'],
        registers: [registry],
        collect() {
          this.reset();
          each((frontend, exportName, counts) => this.inc({ frontend, export: exportName }, of(counts)));
        },
      });
    };
    perOp('fastblock_frontend_requests_total', 'I/O requests a frontend issued to an export, by op', (c) => c.requests);
    perOp('fastblock_frontend_errors_total', 'I/O requests of a frontend that the image failed (the host saw an I/O error), by op', (c) => c.errors);
    perExport('fastblock_frontend_read_bytes_total', 'Bytes a frontend read from an export', (c) => c.readBytes);
    perExport('fastblock_frontend_written_bytes_total', 'Bytes a frontend wrote to an export (write-zeroes and discards not included)', (c) => c.writtenBytes);
    // Every frontend comes here once per registry; the writeback exports of any of them are reported.
    registerWriteBackMetrics(registry);
    registerReadCacheMetrics(registry);
  }

  counts(frontend: string, name: string): ExportCounts {
    let exports = this.byFrontend.get(frontend);
    if (!exports) this.byFrontend.set(frontend, (exports = new Map()));
    let counts = exports.get(name);
    if (!counts) exports.set(name, (counts = new ExportCounts()));
    return counts;
  }
}

const meters = new WeakMap<MetricsRegistry, FrontendMeters>();

export function meteredVolumes(provider: BlockVolumeProvider, registry: MetricsRegistry, frontend: string): BlockVolumeProvider {
  let table = meters.get(registry);
  if (!table) meters.set(registry, (table = new FrontendMeters(registry)));
  const counts = table;
  return {
    list: () => provider.list(),
    open: async (name) => {
      const volume = await provider.open(name);
      return new MeteredVolume(volume, counts.counts(frontend, volume.name));
    },
  };
}

/**
 * For an export that puts caches over a volume this provider opened (a writeback export): the
 * host's I/O is counted at `outer`, as it reaches the export, and no longer at `inner`, where only
 * what gets past the caches arrives (write-backs, reads the caches missed). Returns `outer`
 * unchanged when `inner` is not metered.
 */
export function meterAtOuter(inner: BlockVolume, outer: BlockVolume): BlockVolume {
  if (!(inner instanceof MeteredVolume)) return outer;
  return inner.hoist(outer);
}

/** Where a hoisted volume's counts go: nowhere (never registered). */
const UNCOUNTED = (): ExportCounts => new ExportCounts();

class MeteredVolume implements BlockVolume {
  // One handler per op, made once: a failed I/O is counted without a closure per request.
  private readonly failed: ((err: unknown) => never)[];
  /**
   * Present only when the volume has it (a write-back cache in front asks whether it is there):
   * each write of the call counts as a write request with its bytes; a failed call as that many
   * failed writes (any of them may be the one that failed).
   */
  readonly writeMany?: (writes: readonly BlockWrite[], options?: BlockWriteOptions) => Promise<void>;

  constructor(
    private readonly volume: BlockVolume,
    private counts: ExportCounts,
  ) {
    this.failed = OPS.map((_, op) => (err: unknown): never => {
      this.counts.errors[op]++;
      throw err;
    });
    if (volume.writeMany !== undefined) {
      this.writeMany = (writes, options) => {
        const counts = this.counts;
        counts.requests[WRITE] += writes.length;
        for (const write of writes) for (let i = 0; i < write.data.length; i++) counts.writtenBytes += write.data[i].length;
        return volume.writeMany!(writes, options).catch((err: unknown): never => {
          counts.errors[WRITE] += writes.length;
          throw err;
        });
      };
    }
  }

  /** The volume's, read through (undefined when it has no writeMany). */
  get writeGroupBytes(): number | undefined {
    return this.volume.writeGroupBytes;
  }

  get name(): string {
    return this.volume.name;
  }

  /** Read through: a resized image shows its new size. */
  get size(): number {
    return this.volume.size;
  }

  get blockSize(): number {
    return this.volume.blockSize;
  }

  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    this.counts.requests[READ]++;
    this.counts.readBytes += length;
    return this.volume.read(offset, length, into).catch(this.failed[READ]);
  }

  write(offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions): Promise<void> {
    this.counts.requests[WRITE]++;
    for (let i = 0; i < data.length; i++) this.counts.writtenBytes += data[i].length;
    return this.volume.write(offset, data, options).catch(this.failed[WRITE]);
  }

  flush(): Promise<void> {
    this.counts.requests[FLUSH]++;
    return this.volume.flush().catch(this.failed[FLUSH]);
  }

  discard(offset: number, length: number): Promise<void> {
    this.counts.requests[DISCARD]++;
    return this.volume.discard(offset, length).catch(this.failed[DISCARD]);
  }

  writeZeroes(offset: number, length: number, options?: BlockWriteOptions): Promise<void> {
    this.counts.requests[WRITE_ZEROES]++;
    return this.volume.writeZeroes(offset, length, options).catch(this.failed[WRITE_ZEROES]);
  }

  close(): Promise<void> {
    return this.volume.close();
  }

  /** meterAtOuter: `outer` counts into this export's counts from now on; this volume no longer does. */
  hoist(outer: BlockVolume): BlockVolume {
    const counts = this.counts;
    this.counts = UNCOUNTED();
    return new MeteredVolume(outer, counts);
  }
}
