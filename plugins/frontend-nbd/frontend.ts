/**
 * NbdFrontend: the Frontend contract over an NBD server. It knows volumes only through a
 * BlockVolumeProvider, so the same code exports client-library images in a gateway and in-memory
 * volumes in tests.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { BlockVolumeProvider } from '../../kernel/contracts/block.js';
import type { ExportInfo, ExportSpec, Frontend } from '../../kernel/contracts/frontend.js';
import { ErrorCode, FastblockError, assert } from '../../kernel/errors.js';
import { ByteBudget } from './byte-budget.js';
import { parseExportEntry, type NbdConfig } from './config.js';
import { ExportTable } from './export-table.js';
import { NbdServer } from './server.js';

/** Smallest request the server accepts: any byte range (the volume does read-modify-write). */
const MIN_BLOCK = 1;

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
    this.exports = new ExportTable(provider, config.dynamicExports, log);
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
      for (const entry of this.config.exports) {
        const { volume, readOnly } = parseExportEntry(entry);
        await this.createExport({ volume, options: { readOnly } });
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

  async createExport(spec: ExportSpec): Promise<ExportInfo> {
    const readOnly = spec.options?.readOnly === true;
    await this.exports.pin(spec.volume, { readOnly });
    this.log.info({ volume: spec.volume, readOnly }, 'export created');
    return this.info(spec.volume);
  }

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
    return { id: volume, protocol: this.protocol, volume, location: `nbd://${authority}/${volume}`, clients: this.exports.users(volume) };
  }
}
