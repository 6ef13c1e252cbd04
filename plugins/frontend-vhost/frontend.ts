/**
 * VhostFrontend: the Frontend contract over vhost-user-blk controllers. Volumes come only from the
 * BlockVolumeProvider, so the same code serves client-library images on a node and test targets.
 * Controllers are created and removed while the daemon runs (admin commands) or from config.
 *
 * Each controller is writethrough (the guest's write completes once the volume has it) or
 * writeback: the volume is wrapped in a WriteBackVolume whose log file, under
 * `vhost.writeBackDir`, holds what was acknowledged and is not in the volume yet. The guest was
 * offered a volatile cache either way (VIRTIO_BLK_F_FLUSH); a FLUSH waits for the write-back.
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { BlockVolume, BlockVolumeProvider } from '../../kernel/contracts/block.js';
import type { ExportInfo, ExportSpec, Frontend } from '../../kernel/contracts/frontend.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import type { WriteBackVolume } from '../../kernel/block/write-back-volume.js';
import { meterAtOuter } from '../../kernel/metrics/metered-volumes.js';
import { isWriteBackHoldMs, MAX_WRITE_BACK_HOLD_MS, openExportWriteBack, writeBackDetails, writeBackLeftover, writeBackPath } from '../../kernel/block/export-cache.js';
import { VhostController } from './controller.js';
import { CACHE_MODES, isCacheMode, parseControllerEntry, type CacheMode, type VhostConfig } from './config.js';
import { vhostNative, type VhostNative } from './native.js';
import { qemuOptions } from './qemu-options.js';

const MiB = 1024 * 1024;

interface Served {
  readonly controller: VhostController;
  readonly cache: CacheMode;
  /** The controller's volume when it is writeback. */
  readonly writeBack: WriteBackVolume | undefined;
}

export class VhostFrontend implements Frontend {
  readonly protocol = 'vhost-user-blk';
  /** By id, which is the socket path: one controller per socket. */
  private readonly controllers = new Map<string, Served>();
  private readonly native: VhostNative;

  constructor(
    private readonly provider: BlockVolumeProvider,
    private readonly config: VhostConfig,
    private readonly log: Logger,
    native?: VhostNative,
  ) {
    // The schema checks it for the daemon; embedders (tests, tools) build the config themselves, and
    // a hold that is not a number would keep writes in the log until a flush.
    if (!isWriteBackHoldMs(config.writeBackHoldMs)) {
      throw new FastblockError(ErrorCode.CONFIG_INVALID, `vhost.writeBackHoldMs must be an integer in [0, ${MAX_WRITE_BACK_HOLD_MS}]`, { writeBackHoldMs: config.writeBackHoldMs });
    }
    this.native = native ?? vhostNative();
  }

  /** Creates the configured controllers; on a failure removes those already created. */
  async start(): Promise<void> {
    try {
      for (const entry of this.config.controllers) {
        const { volume, socket, queues, cache } = parseControllerEntry(entry, this.config.defaultQueues);
        await this.createExport({ volume, options: { socket, queues, ...(cache === undefined ? {} : { cache }) } });
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.controllers.keys()].map((id) => this.removeExport(id)));
  }

  async createExport(spec: ExportSpec): Promise<ExportInfo> {
    const socketOption = spec.options?.socket;
    if (typeof socketOption !== 'string' || socketOption === '') {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'a vhost controller needs a socket path', { volume: spec.volume });
    }
    const queues = spec.options?.queues ?? this.config.defaultQueues;
    if (typeof queues !== 'number') throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'queues must be a number', { queues });
    const cache = spec.options?.cache ?? this.config.cache;
    if (!isCacheMode(cache)) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `cache must be one of ${CACHE_MODES.join(', ')}`, { volume: spec.volume, cache });
    }
    const socket = resolve(socketOption);
    if (this.controllers.has(socket)) throw new FastblockError(ErrorCode.ALREADY_EXISTS, `a vhost controller already serves ${socket}`, { socket });
    const log = this.log.child({ socket, volume: spec.volume });
    const settings = { dir: this.config.writeBackDir, capacityBytes: this.config.writeBackMiB * MiB, readCacheBytes: this.config.readCacheMiB * MiB, holdMs: this.config.writeBackHoldMs };
    const inner = await this.provider.open(spec.volume);
    let volume: BlockVolume = inner;
    let writeBack: WriteBackVolume | undefined;
    try {
      if (cache === 'writeback') {
        writeBack = openExportWriteBack(spec.volume, inner, settings, log);
        // The guest's I/O is what the export's metrics count, not what gets past the caches.
        volume = meterAtOuter(inner, writeBack);
      } else {
        await writeBackLeftover(spec.volume, inner, settings, log);
      }
    } catch (err) {
      await inner.close();
      throw err;
    }
    let controller: VhostController;
    try {
      controller = new VhostController(volume, { socket, queues, sizeCheckMs: this.config.sizeCheckMs }, this.native, log);
    } catch (err) {
      // A writeback volume drains (a replayed log included) and removes its log as it closes.
      await volume.close();
      throw err;
    }
    const served: Served = { controller, cache, writeBack };
    this.controllers.set(socket, served);
    this.log.info(
      { volume: spec.volume, socket, queues, cache, ...(writeBack ? { writeBackLog: writeBackPath(settings.dir, spec.volume), writeBackMiB: writeBack.stats().capacityBytes / MiB, writeBackHoldMs: settings.holdMs } : {}), qemu: qemuOptions(socket, { queues }) },
      'vhost controller created',
    );
    return this.describe(socket, served);
  }

  async removeExport(id: string): Promise<void> {
    const socket = resolve(id);
    const served = this.controllers.get(socket);
    if (!served) throw new FastblockError(ErrorCode.NOT_FOUND, `no vhost controller on ${socket}`, { socket });
    this.controllers.delete(socket);
    // Closing the volume drains a write-back cache into the volume and removes its log.
    await served.controller.close();
    this.log.info({ socket, cache: served.cache }, 'vhost controller removed');
  }

  listExports(): ExportInfo[] {
    return [...this.controllers].map(([socket, served]) => this.describe(socket, served));
  }

  private describe(socket: string, { controller, cache, writeBack }: Served): ExportInfo {
    let details: ExportInfo['details'] = { cache };
    if (writeBack !== undefined) details = { cache, ...writeBackDetails(writeBack) };
    return { id: socket, protocol: this.protocol, volume: controller.volume.name, location: socket, clients: controller.clients, details };
  }
}
