/**
 * NbdFrontend: the Frontend contract over an NBD server. It knows volumes only through a
 * BlockVolumeProvider, so the same code exports client-library images in a gateway and in-memory
 * volumes in tests.
 *
 * Each export is writethrough (a write is replied once the volume has it) or writeback: its volume
 * is wrapped in a WriteBackVolume whose log file, under `nbd.writeBackDir`, holds what was
 * acknowledged and is not in the volume yet (export-table.ts). Clients were told the export has a
 * volatile cache either way (NBD_FLAG_SEND_FLUSH) and flush at their commit points; a FLUSH waits
 * for the write-back, a FUA write for its own.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { BlockVolumeProvider } from '../../kernel/contracts/block.js';
import type { ExportInfo, ExportSpec, Frontend } from '../../kernel/contracts/frontend.js';
import { ErrorCode, FastblockError, assert } from '../../kernel/errors.js';
import { ByteBudget } from './byte-budget.js';
import { CACHE_MODES, MAX_WRITE_BACK_MIB, MIN_WRITE_BACK_MIB, isCacheMode, parseExportEntry, type NbdConfig } from './config.js';
import { isWriteBackHoldMs, isWriteBackMiB, MAX_WRITE_BACK_HOLD_MS } from '../../kernel/block/export-cache.js';
import { ExportTable, servedCache } from './export-table.js';
import { NbdServer } from './server.js';

/** Smallest request the server accepts: any byte range (the volume does read-modify-write). */
const MIN_BLOCK = 1;
const MiB = 1024 * 1024;

export class NbdFrontend implements Frontend {
  readonly protocol = 'nbd';
  private readonly exports: ExportTable;
  private readonly server: NbdServer;
  private address: AddressInfo | undefined;

  constructor(
    provider: BlockVolumeProvider,
    private readonly config: NbdConfig,
    private readonly log: Logger,
  ) {
    if (!Number.isInteger(config.maxPayload) || config.maxPayload < 4096 || config.maxPayload > 0xffff_ffff) {
      throw new FastblockError(ErrorCode.CONFIG_INVALID, 'nbd.maxPayload must be an integer in [4096, 2^32)', { maxPayload: config.maxPayload });
    }
    if (config.maxInFlight < 1) throw new FastblockError(ErrorCode.CONFIG_INVALID, 'nbd.maxInFlight must be at least 1', { maxInFlight: config.maxInFlight });
    if (config.maxInFlightBytes < config.maxPayload) {
      throw new FastblockError(ErrorCode.CONFIG_INVALID, 'nbd.maxInFlightBytes must be at least nbd.maxPayload', { maxInFlightBytes: config.maxInFlightBytes, maxPayload: config.maxPayload });
    }
    if (!isCacheMode(config.cache)) {
      throw new FastblockError(ErrorCode.CONFIG_INVALID, `nbd.cache must be one of ${CACHE_MODES.join(', ')}`, { cache: config.cache });
    }
    if (!isWriteBackMiB(config.writeBackMiB)) {
      throw new FastblockError(ErrorCode.CONFIG_INVALID, `nbd.writeBackMiB must be an integer in [${MIN_WRITE_BACK_MIB}, ${MAX_WRITE_BACK_MIB}]`, { writeBackMiB: config.writeBackMiB });
    }
    if (!isWriteBackHoldMs(config.writeBackHoldMs)) {
      throw new FastblockError(ErrorCode.CONFIG_INVALID, `nbd.writeBackHoldMs must be an integer in [0, ${MAX_WRITE_BACK_HOLD_MS}]`, { writeBackHoldMs: config.writeBackHoldMs });
    }
    this.exports = new ExportTable(
      provider,
      { dynamic: config.dynamicExports, cache: config.cache, writeBack: { dir: config.writeBackDir, capacityBytes: config.writeBackMiB * MiB, readCacheBytes: config.readCacheMiB * MiB, holdMs: config.writeBackHoldMs } },
      log,
    );
    this.server = new NbdServer(
      this.exports,
      {
        host: config.host,
        port: config.port,
        maxConnections: config.maxConnections,
        maxInFlight: config.maxInFlight,
        maxPayload: config.maxPayload,
        budget: new ByteBudget(config.maxInFlightBytes),
        handshakeTimeoutMs: config.handshakeTimeoutMs,
        defaultExport: config.defaultExport === '' ? undefined : config.defaultExport,
        blockSizes: { minimum: MIN_BLOCK, preferred: 4096, maximum: config.maxPayload },
      },
      log,
    );
  }

  /** Opens the configured exports, then listens. Resolves with the bound address; on failure leaves nothing open. */
  async start(): Promise<AddressInfo> {
    try {
      // Every entry is parsed before any export opens: a bad one refuses the start as a whole.
      const entries = this.config.exports.map(parseExportEntry);
      for (const { volume, readOnly, cache } of entries) {
        await this.createExport({ volume, options: { readOnly, ...(cache === undefined ? {} : { cache }) } });
      }
      this.address = await this.server.listen();
      return this.address;
    } catch (err) {
      await this.exports.closeAll();
      throw err;
    }
  }

  async stop(): Promise<void> {
    await this.server.stop();
    await this.exports.closeAll();
  }

  get port(): number {
    assert(this.address !== undefined, 'frontend not started');
    return this.address.port;
  }

  /**
   * Options: `readOnly` (boolean), `cache` ('writethrough' | 'writeback', default nbd.cache; a
   * read-only export is served writethrough whatever it says). Creating an export that is already
   * open in another cache mode is BUSY.
   */
  async createExport(spec: ExportSpec): Promise<ExportInfo> {
    const readOnly = spec.options?.readOnly === true;
    const requested = spec.options?.cache ?? this.config.cache;
    if (!isCacheMode(requested)) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `cache must be one of ${CACHE_MODES.join(', ')}`, { volume: spec.volume, cache: requested });
    }
    const cache = servedCache(readOnly, requested);
    if (cache !== requested && spec.options?.cache !== undefined) {
      this.log.info({ volume: spec.volume, cache: requested }, 'a read-only export is served writethrough: it has no writes to cache');
    }
    await this.exports.pin(spec.volume, { readOnly, cache });
    const info = this.info(spec.volume);
    const writeBack = cache === 'writeback' ? { writeBackDir: this.config.writeBackDir, writeBackMiB: this.config.writeBackMiB, writeBackHoldMs: this.config.writeBackHoldMs } : {};
    this.log.info({ volume: spec.volume, readOnly, cache, ...writeBack }, 'export created');
    return info;
  }

  /** Stops exporting; the last client's leaving closes the volume (a writeback one drains its log first). */
  async removeExport(id: string): Promise<void> {
    await this.exports.unpin(id);
    this.log.info({ volume: id }, 'export removed');
  }

  listExports(): ExportInfo[] {
    return this.exports.pinnedNames().map((name) => this.info(name));
  }

  private info(volume: string): ExportInfo {
    const host = this.address?.address ?? this.config.host;
    const port = this.address?.port ?? this.config.port;
    const authority = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    return { id: volume, protocol: this.protocol, volume, location: `nbd://${authority}/${volume}`, clients: this.exports.users(volume), ...this.details(volume) };
  }

  /** The listing's details: the cache mode, read-only, and a writeback export's write-back figures. */
  private details(volume: string): { details?: ExportInfo['details'] } {
    const described = this.exports.describe(volume);
    if (described === undefined) return {};
    const { cache, readOnly, writeBack } = described;
    if (writeBack === undefined) return { details: { cache, readOnly } };
    return { details: { cache, readOnly, ...writeBack } };
  }
}
