/**
 * The NVMe/TCP target: a listener, the discovery subsystem, and one NVM subsystem per exported
 * volume. It is the plugin's Frontend: exports are created and removed at runtime (admin commands,
 * config at start) and each appears in the discovery log as it comes and goes.
 *
 * Each export is writethrough (a write completes once the volume has it) or writeback: its volume is
 * wrapped in ONE WriteBackVolume, shared by every controller and queue of the subsystem, whose log
 * file under `writeBackDir` holds what was acknowledged and is not in the volume yet. So a Flush on
 * any queue waits for every write acknowledged before it, whichever queue or host sent it. A
 * writeback namespace is reported as a volatile write cache (Identify Controller VWC), so hosts
 * flush at their commit points; a FUA write waits for its own write-back.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { WriteBackVolume } from '../../kernel/block/write-back-volume.js';
import { meterAtOuter } from '../../kernel/metrics/metered-volumes.js';
import type { BlockVolume, BlockVolumeProvider } from '../../kernel/contracts/block.js';
import type { ExportInfo, ExportSpec, Frontend } from '../../kernel/contracts/frontend.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import type { AdvertisedPort } from './controller/admin-commands.js';
import { AEC_DISCOVERY_LOG_CHANGE, AEN_DISCOVERY_LOG_CHANGE, type Controller } from './controller/controller.js';
import type { ControllerLimits } from './controller/limits.js';
import type { QueueDirectory } from './controller/queue.js';
import { DISCOVERY_NQN, DiscoverySubsystem, type DiscoveryEntry } from './subsystem/discovery-subsystem.js';
import { Namespace } from './subsystem/namespace.js';
import { NvmSubsystem } from './subsystem/nvm-subsystem.js';
import { NvmeTcpConnection } from './tcp/connection.js';
import { SocketWire } from './tcp/socket-wire.js';
import {
  CACHE_MODES,
  DEFAULT_WRITE_BACK_DIR,
  DEFAULT_READ_CACHE_MIB,
  DEFAULT_WRITE_BACK_HOLD_MS,
  DEFAULT_WRITE_BACK_MIB,
  MAX_WRITE_BACK_MIB,
  MIN_WRITE_BACK_MIB,
  MAX_WRITE_BACK_HOLD_MS,
  isCacheMode,
  isWriteBackHoldMs,
  openExportWriteBack,
  writeBackDetails,
  writeBackLeftover,
  type CacheMode,
  type WriteBackSettings,
} from '../../kernel/block/export-cache.js';

export interface NvmfTargetOptions extends ControllerLimits {
  /** Address the listener binds. */
  readonly listenAddress: string;
  /** TCP port; 0 picks a free one (read it back from `port`). */
  readonly port: number;
  /** Address the discovery log tells hosts to dial (default: listenAddress). */
  readonly advertiseAddress?: string;
  /** Default NQNs are `<prefix>:<pool>:<image>`. */
  readonly nqnPrefix: string;
  /** How often exported volumes' sizes are checked; a change is reported to hosts (ms). */
  readonly sizeCheckMs: number;
  /** Cache mode of an export whose spec names none. */
  readonly cache: CacheMode;
  /** Directory of the write-back logs, one per image (shared with the vhost and nbd plugins by default). */
  readonly writeBackDir: string;
  /** Ring size of each writeback export's log, bytes. */
  readonly writeBackBytes: number;
  /** Read cache of each writeback export, bytes (0: none). */
  readonly readCacheBytes: number;
  /** How long a writeback export's write stays in its log before its write-back starts (ms; 0: at once). */
  readonly writeBackHoldMs: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_NVMF_OPTIONS: NvmfTargetOptions = {
  listenAddress: '127.0.0.1',
  port: 4420,
  nqnPrefix: 'nqn.2024-01.io.fastblock',
  sizeCheckMs: 1000,
  cache: 'writethrough',
  writeBackDir: DEFAULT_WRITE_BACK_DIR,
  writeBackBytes: DEFAULT_WRITE_BACK_MIB * MiB,
  readCacheBytes: DEFAULT_READ_CACHE_MIB * MiB,
  writeBackHoldMs: DEFAULT_WRITE_BACK_HOLD_MS,
  maxIoQueues: 8,
  maxQueueEntries: 128,
  maxTransferBytes: 1024 * 1024,
  inCapsuleDataSize: 8192,
  maxH2CData: 128 * 1024,
  keepAliveGraceMs: 1000,
  model: 'fastblock',
  firmware: '0.1.0',
};

/** NQNs are at most 223 bytes (NVMe Base 4.5) and start with "nqn.". */
const MAX_NQN_BYTES = 223;

interface Export {
  readonly subsystem: NvmSubsystem;
  readonly volume: string;
  readonly cache: CacheMode;
  /** The namespace's volume when writeback. */
  readonly writeBack: WriteBackVolume | undefined;
}

export class NvmfTarget implements Frontend, QueueDirectory {
  readonly protocol = 'nvme-tcp';
  readonly limits: ControllerLimits;
  private readonly options: NvmfTargetOptions;
  private readonly exports = new Map<string, Export>();
  /** Closes under way (a writeback one drains its log), by volume name: an export of it waits for them. */
  private readonly closing = new Map<string, Promise<void>>();
  private readonly discovery: DiscoverySubsystem;
  private readonly connections = new Map<Socket, NvmeTcpConnection>();
  private server: Server | undefined;
  private boundPort = 0;
  private sizeCheckTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly provider: BlockVolumeProvider,
    readonly logger: Logger,
    options: Partial<NvmfTargetOptions> = {},
  ) {
    this.options = { ...DEFAULT_NVMF_OPTIONS, ...options };
    this.limits = this.options;
    const bad = validateLimits(this.options);
    if (bad) throw new FastblockError(ErrorCode.CONFIG_INVALID, `nvmf: ${bad}`, { options: this.options });
    this.discovery = new DiscoverySubsystem(() => this.discoveryEntries());
  }

  get port(): number {
    return this.boundPort;
  }

  get advertised(): AdvertisedPort {
    return { address: this.options.advertiseAddress ?? this.options.listenAddress, port: this.boundPort };
  }

  async start(): Promise<void> {
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.listenAddress, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error({ err }, 'nvmf listener error'));
    const address = server.address();
    this.boundPort = typeof address === 'object' && address ? address.port : this.options.port;
    this.server = server;
    // A volume's size follows the cluster map (an image resize); hosts learn of it from the
    // Namespace Attribute Changed event and rescan the namespace.
    this.sizeCheckTimer = setInterval(() => this.checkSizes(), this.options.sizeCheckMs);
    this.sizeCheckTimer.unref();
    this.logger.info({ address: this.options.listenAddress, port: this.boundPort }, 'NVMe/TCP target listening');
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    clearInterval(this.sizeCheckTimer);
    this.sizeCheckTimer = undefined;
    for (const socket of this.connections.keys()) socket.destroy();
    for (const id of [...this.exports.keys()]) await this.removeExport(id);
    await Promise.all([...this.closing.values()]);
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    const logger = this.logger.child({ peer: `${socket.remoteAddress}:${socket.remotePort}` });
    const connection = new NvmeTcpConnection(new SocketWire(socket), this, this.limits, logger);
    this.connections.set(socket, connection);
    socket.on('data', (chunk: Buffer) => connection.receive(chunk));
    socket.on('error', (err) => logger.debug({ err }, 'NVMe/TCP socket error'));
    socket.on('close', () => {
      this.connections.delete(socket);
      connection.closed();
    });
  }

  // --- QueueDirectory ---------------------------------------------------------------------

  findSubsystem(nqn: string): NvmSubsystem | DiscoverySubsystem | undefined {
    if (nqn === DISCOVERY_NQN) return this.discovery;
    return this.exports.get(nqn)?.subsystem;
  }

  controllerCreated(controller: Controller): void {
    this.logger.debug({ cntlid: controller.cntlid, subnqn: controller.subsystem.nqn }, 'controller up');
  }

  controllerDestroyed(controller: Controller): void {
    this.logger.info({ cntlid: controller.cntlid, subnqn: controller.subsystem.nqn, hostnqn: controller.hostNqn }, 'controller destroyed');
  }

  private discoveryEntries(): DiscoveryEntry[] {
    const { address, port } = this.advertised;
    return [
      { nqn: DISCOVERY_NQN, subtype: 3, address, port },
      ...[...this.exports.keys()].map((nqn) => ({ nqn, subtype: 2 as const, address, port })),
    ];
  }

  private checkSizes(): void {
    for (const [nqn, entry] of this.exports) {
      for (const ns of entry.subsystem.namespaces.values()) {
        const before = ns.blocks;
        if (!ns.refreshSize()) continue;
        this.logger.info({ nqn, volume: entry.volume, nsid: ns.nsid, blocks: ns.blocks, before }, 'namespace size changed: notifying hosts');
        for (const controller of entry.subsystem.controllers.values()) controller.namespaceChanged(ns.nsid);
      }
    }
  }

  private discoveryChanged(): void {
    this.discovery.generation++;
    for (const controller of this.discovery.controllers.values()) controller.notify(AEN_DISCOVERY_LOG_CHANGE, AEC_DISCOVERY_LOG_CHANGE);
  }

  // --- Frontend ---------------------------------------------------------------------------

  defaultNqn(volume: string): string {
    return `${this.options.nqnPrefix}:${volume.replace(/\//g, ':')}`;
  }

  /**
   * Options: `nqn` (default `<nqnPrefix>:<pool>:<image>`), `cache` ('writethrough' | 'writeback',
   * default nvmf.cache). A writeback export of an image whose log another export or process holds
   * is BUSY, and so is a writethrough one while a writeback export serves the image.
   */
  async createExport(spec: ExportSpec): Promise<ExportInfo> {
    const requested = spec.options?.nqn;
    if (requested !== undefined && typeof requested !== 'string') {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'nqn must be a string', { nqn: requested });
    }
    const cache = spec.options?.cache ?? this.options.cache;
    if (!isCacheMode(cache)) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `cache must be one of ${CACHE_MODES.join(', ')}`, { volume: spec.volume, cache });
    }
    const nqn = requested ?? this.defaultNqn(spec.volume);
    const problem = nqnProblem(nqn);
    if (problem) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `invalid NQN ${JSON.stringify(nqn)}: ${problem}`, { nqn });
    if (this.exports.has(nqn)) throw new FastblockError(ErrorCode.ALREADY_EXISTS, `subsystem ${nqn} already exists`, { nqn });
    // A removed export of this image may still be draining its log (and holds its lock).
    await this.closing.get(spec.volume);
    const { volume, writeBack } = await this.openVolume(spec.volume, cache);
    if (this.exports.has(nqn)) {
      await volume.close();
      throw new FastblockError(ErrorCode.ALREADY_EXISTS, `subsystem ${nqn} already exists`, { nqn });
    }
    let namespace: Namespace;
    try {
      namespace = new Namespace(1, volume, nqn, cache === 'writeback');
    } catch (err) {
      await volume.close();
      throw err;
    }
    const subsystem = new NvmSubsystem(nqn, [namespace]);
    this.exports.set(nqn, { subsystem, volume: spec.volume, cache, writeBack });
    this.discoveryChanged();
    const settings = writeBack ? { writeBackDir: this.options.writeBackDir, writeBackBytes: this.options.writeBackBytes, writeBackHoldMs: this.options.writeBackHoldMs } : {};
    this.logger.info({ nqn, volume: spec.volume, uuid: namespace.uuidString, cache, ...settings }, 'NVMe/TCP export created');
    return this.info(nqn);
  }

  /**
   * The provider's volume, behind a WriteBackVolume when writeback. A writethrough one first writes
   * back a log an earlier process left for it. A failure closes what was opened.
   */
  private async openVolume(name: string, cache: CacheMode): Promise<{ volume: BlockVolume; writeBack: WriteBackVolume | undefined }> {
    const inner = await this.provider.open(name);
    const log = this.logger.child({ volume: name });
    const settings: WriteBackSettings = {
      dir: this.options.writeBackDir,
      capacityBytes: this.options.writeBackBytes,
      readCacheBytes: this.options.readCacheBytes,
      holdMs: this.options.writeBackHoldMs,
    };
    try {
      if (cache === 'writeback') {
        const writeBack = openExportWriteBack(name, inner, settings, log);
        // The hosts' I/O is what the export's metrics count, not what gets past the caches.
        return { volume: meterAtOuter(inner, writeBack), writeBack };
      }
      await writeBackLeftover(name, inner, settings, log);
      return { volume: inner, writeBack: undefined };
    } catch (err) {
      await inner.close().catch((closeErr: unknown) => log.warn({ err: closeErr }, 'closing a volume failed'));
      throw err;
    }
  }

  /**
   * Disconnects the export's hosts, then closes its volume: a writeback one first writes back
   * everything acknowledged (as long as the volume takes) and removes its log. Resolves after that.
   */
  async removeExport(id: string): Promise<void> {
    const entry = this.exports.get(id);
    if (!entry) throw new FastblockError(ErrorCode.NOT_FOUND, `no NVMe/TCP export ${id}`, { id });
    this.exports.delete(id);
    for (const controller of [...entry.subsystem.controllers.values()]) controller.destroy('subsystem removed');
    this.discoveryChanged();
    const dirty = entry.writeBack?.stats();
    if (dirty) this.logger.info({ nqn: id, volume: entry.volume, dirtyBytes: dirty.dirtyBytes, dirtyRecords: dirty.dirtyRecords }, 'NVMe/TCP export removed: draining its write-back log');
    const earlier = this.closing.get(entry.volume);
    const closed = Promise.allSettled([...entry.subsystem.namespaces.values()].map((ns) => ns.volume.close())).then((results) => {
      for (const r of results) if (r.status === 'rejected') this.logger.warn({ err: r.reason, nqn: id, volume: entry.volume }, 'closing a volume failed');
    });
    const done = Promise.all([earlier, closed]).then(() => {
      if (this.closing.get(entry.volume) === done) this.closing.delete(entry.volume);
    });
    this.closing.set(entry.volume, done);
    await done;
    this.logger.info({ nqn: id, volume: entry.volume, cache: entry.cache }, 'NVMe/TCP export removed');
  }

  listExports(): ExportInfo[] {
    return [...this.exports.keys()].map((nqn) => this.info(nqn));
  }

  /** Controllers currently associated with an export (tests and `nvmf ls`). */
  controllersOf(nqn: string): readonly Controller[] {
    return [...(this.findSubsystem(nqn)?.controllers.values() ?? [])];
  }

  private info(nqn: string): ExportInfo {
    const entry = this.exports.get(nqn);
    if (!entry) throw new FastblockError(ErrorCode.NOT_FOUND, `no NVMe/TCP export ${nqn}`, { nqn });
    const { address, port } = this.advertised;
    return { id: nqn, protocol: this.protocol, volume: entry.volume, location: `${address}:${port} ${nqn}`, clients: entry.subsystem.controllers.size, details: details(entry) };
  }
}

/** The listing's details: the cache mode, and a writeback export's write-back figures. */
function details(entry: Export): NonNullable<ExportInfo['details']> {
  if (entry.writeBack === undefined) return { cache: entry.cache };
  return { cache: entry.cache, ...writeBackDetails(entry.writeBack) };
}

function nqnProblem(nqn: string): string | undefined {
  if (!nqn.startsWith('nqn.')) return 'must start with "nqn."';
  if (Buffer.byteLength(nqn) > MAX_NQN_BYTES) return `longer than ${MAX_NQN_BYTES} bytes`;
  if (nqn === DISCOVERY_NQN) return 'is the discovery NQN';
  if (/[\0\s]/.test(nqn)) return 'contains whitespace or NUL';
  return undefined;
}

function validateLimits(o: NvmfTargetOptions): string | undefined {
  const pow2 = (n: number): boolean => Number.isInteger(Math.log2(n));
  if (!pow2(o.maxTransferBytes) || o.maxTransferBytes < 4096) return 'maxTransferBytes must be a power of two >= 4096';
  if (o.maxH2CData < 4096 || o.maxH2CData % 4 !== 0) return 'maxH2CData must be >= 4096 and a multiple of 4';
  if (o.inCapsuleDataSize < 1024 || o.inCapsuleDataSize % 16 !== 0) return 'inCapsuleDataSize must be >= 1024 (Connect data) and a multiple of 16';
  if (o.maxQueueEntries < 2 || o.maxQueueEntries > 65536) return 'maxQueueEntries must be in [2, 65536]';
  if (o.maxIoQueues < 1 || o.maxIoQueues > 65535) return 'maxIoQueues must be in [1, 65535]';
  if (!Number.isInteger(o.sizeCheckMs) || o.sizeCheckMs < 10) return 'sizeCheckMs must be an integer of at least 10';
  if (!isCacheMode(o.cache)) return `cache must be one of ${CACHE_MODES.join(', ')}`;
  if (typeof o.writeBackDir !== 'string' || o.writeBackDir === '') return 'writeBackDir must be a non-empty path';
  if (!Number.isInteger(o.writeBackBytes) || o.writeBackBytes < MIN_WRITE_BACK_MIB * MiB || o.writeBackBytes > MAX_WRITE_BACK_MIB * MiB) {
    return `writeBackBytes must be an integer in [${MIN_WRITE_BACK_MIB}, ${MAX_WRITE_BACK_MIB}] MiB`;
  }
  if (!isWriteBackHoldMs(o.writeBackHoldMs)) return `writeBackHoldMs must be an integer in [0, ${MAX_WRITE_BACK_HOLD_MS}]`;
  return undefined;
}
