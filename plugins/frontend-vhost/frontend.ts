/**
 * VhostFrontend: the Frontend contract over vhost-user-blk controllers. Volumes come only from the
 * BlockVolumeProvider, so the same code serves client-library images on a node and test targets.
 * Controllers are created and removed while the daemon runs (admin commands) or from config.
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { BlockVolumeProvider } from '../../kernel/contracts/block.js';
import type { ExportInfo, ExportSpec, Frontend } from '../../kernel/contracts/frontend.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { VhostController } from './controller.js';
import { parseControllerEntry, type VhostConfig } from './config.js';
import { vhostNative, type VhostNative } from './native.js';
import { qemuOptions } from './qemu-options.js';

export class VhostFrontend implements Frontend {
  readonly protocol = 'vhost-user-blk';
  /** By id, which is the socket path: one controller per socket. */
  private readonly controllers = new Map<string, VhostController>();
  private readonly native: VhostNative;

  constructor(
    private readonly provider: BlockVolumeProvider,
    private readonly config: VhostConfig,
    private readonly log: Logger,
    native?: VhostNative,
  ) {
    this.native = native ?? vhostNative();
  }

  /** Creates the configured controllers; on a failure removes those already created. */
  async start(): Promise<void> {
    try {
      for (const entry of this.config.controllers) {
        const { volume, socket, queues } = parseControllerEntry(entry, this.config.defaultQueues);
        await this.createExport({ volume, options: { socket, queues } });
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
    const socket = resolve(socketOption);
    if (this.controllers.has(socket)) throw new FastblockError(ErrorCode.ALREADY_EXISTS, `a vhost controller already serves ${socket}`, { socket });
    const volume = await this.provider.open(spec.volume);
    let controller: VhostController;
    try {
      controller = new VhostController(volume, { socket, queues, sizeCheckMs: this.config.sizeCheckMs }, this.native, this.log.child({ socket, volume: spec.volume }));
    } catch (err) {
      await volume.close();
      throw err;
    }
    this.controllers.set(socket, controller);
    this.log.info({ volume: spec.volume, socket, queues, qemu: qemuOptions(socket, { queues }) }, 'vhost controller created');
    return this.describe(socket, controller);
  }

  async removeExport(id: string): Promise<void> {
    const socket = resolve(id);
    const controller = this.controllers.get(socket);
    if (!controller) throw new FastblockError(ErrorCode.NOT_FOUND, `no vhost controller on ${socket}`, { socket });
    this.controllers.delete(socket);
    await controller.close();
    this.log.info({ socket }, 'vhost controller removed');
  }

  listExports(): ExportInfo[] {
    return [...this.controllers].map(([socket, controller]) => this.describe(socket, controller));
  }

  private describe(socket: string, controller: VhostController): ExportInfo {
    return { id: socket, protocol: this.protocol, volume: controller.volume.name, location: socket, clients: controller.clients };
  }
}
