/**
 * The OSD on the daemon's main thread: boots with the monitor (keeping its id on disk), runs one
 * worker thread per shard, forwards every new map to them, and heartbeats the monitor with the
 * PG states and leaders the shards report. The data path never passes through here.
 */
import { createServer } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { parseAddress } from '../../kernel/address.js';
import type { ClusterMap } from '../../kernel/contracts/cluster-map.js';
import type { NetAddress, Transport } from '../../kernel/contracts/transport.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { MonitorClient } from '../monitor/client.js';
import type { OsdConfig } from './config.js';
import { readIdentity, writeIdentity } from './osd-identity.js';
import type { PgReport } from './shard.js';
import { CommitLatency, osdStoreUsage, type ShardFigures } from './shard-figures.js';
import type { ShardWorkerData, ToMain, ToWorker } from './worker-protocol.js';

export interface OsdServiceOptions {
  readonly config: OsdConfig;
  readonly transport: Transport;
  /** The store plugin as the daemon loaded it; each worker loads it again for its own store. */
  readonly storePlugin: string;
  readonly allConfig: Readonly<Record<string, unknown>>;
  readonly logger: Logger;
  readonly logLevel: string;
  readonly daemonName: string;
}

interface ShardWorker {
  readonly shard: number;
  readonly worker: Worker;
}

/** One shard's answer to a report round trip. */
export interface ShardSurvey {
  readonly reports: PgReport[];
  readonly figures: ShardFigures;
}

const WORKER_START_TIMEOUT_MS = 60_000;

async function freePort(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * Built, the worker is shard-worker.js. From sources (tests under tsx) it is shard-worker.ts, and
 * a worker thread does not inherit the main thread's loader hooks: it registers tsx first.
 */
function shardWorker(data: ShardWorkerData): Worker {
  const extension = extname(fileURLToPath(import.meta.url));
  const url = new URL(`./shard-worker${extension}`, import.meta.url);
  if (extension !== '.ts') return new Worker(url, { workerData: data });
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData: data });
}

export class OsdService {
  osdId = -1;
  address: NetAddress | undefined;
  private monitors: MonitorClient | undefined;
  private workers: ShardWorker[] = [];
  /** The OSDs the monitor last reported past monitor.fullRatio, sorted (the shards have them). */
  private fullOsds: number[] = [];
  private readonly commitLatency = new CommitLatency();
  private heartbeat: NodeJS.Timeout | undefined;
  private nextReport = 1;
  private readonly reportWaiters = new Map<number, (survey: ShardSurvey) => void>();
  private stopping = false;

  constructor(private readonly options: OsdServiceOptions) {}

  async start(): Promise<void> {
    const { config, logger } = this.options;
    if (!this.options.transport.recipe) {
      throw new FastblockError(ErrorCode.CONFIG_INVALID, `transport '${this.options.transport.name}' cannot be re-created in a shard thread (no recipe)`, {});
    }
    const dataDir = resolve(config.dataDir);
    await mkdir(dataDir, { recursive: true });
    const listen = parseAddress(config.listen, 'osd.listen');
    if (listen.port === 0 && config.shards > 1) {
      throw new FastblockError(ErrorCode.CONFIG_INVALID, 'osd.listen port 0 needs osd.shards = 1: shard s listens on port + s', { shards: config.shards });
    }
    this.address = listen.port === 0 ? { host: listen.host, port: await freePort(listen.host) } : listen;

    const monitors = new MonitorClient({
      transport: this.options.transport,
      monitors: config.monitors.split(',').map((s) => s.trim()).filter(Boolean),
      name: `osd@${config.host}`,
    });
    this.monitors = monitors;
    const identity = await readIdentity(dataDir);
    const booted = await monitors.boot({
      osdId: identity.osdId,
      uuid: identity.uuid,
      address: this.address,
      shards: config.shards,
      host: config.host,
      failureDomain: config.failureDomain || config.host,
      weight: config.weight,
    });
    this.osdId = booted.osdId;
    if (identity.osdId !== booted.osdId) await writeIdentity(dataDir, { osdId: booted.osdId, uuid: identity.uuid });
    logger.info({ osd: this.osdId, address: this.address, shards: config.shards }, 'OSD booted');

    for (let shard = 0; shard < config.shards; shard++) this.workers.push(this.spawn(shard, dataDir));
    await Promise.all(this.workers.map((w) => this.ready(w)));

    monitors.onMap((map) => this.onMap(map));
    this.onMap(await monitors.subscribe());
    this.heartbeat = setInterval(() => void this.sendHeartbeat(), config.heartbeatMs);
    void this.sendHeartbeat();
  }

  private spawn(shard: number, dataDir: string): ShardWorker {
    const { config } = this.options;
    const data: ShardWorkerData = {
      osd: this.osdId,
      shard,
      listen: { host: this.address!.host, port: this.address!.port + shard },
      transport: this.options.transport.recipe!,
      storePlugin: this.options.storePlugin,
      config: this.options.allConfig,
      storePath: join(dataDir, `shard-${shard}.blob`),
      storeSizeBytes: config.storeSizeMb * 1024 * 1024,
      tickMs: config.tickMs,
      fullRatio: config.fullRatio,
      logLevel: this.options.logLevel,
      daemonName: this.options.daemonName,
    };
    const worker = shardWorker(data);
    worker.on('message', (message: ToMain) => this.onWorkerMessage(shard, message));
    worker.on('error', (err) => this.options.logger.error({ err, shard }, 'shard worker crashed'));
    worker.on('exit', (code) => {
      if (!this.stopping) {
        this.options.logger.fatal({ shard, code }, 'shard worker exited; the OSD stops');
        process.kill(process.pid, 'SIGTERM');
      }
    });
    return { shard, worker };
  }

  private ready(w: ShardWorker): Promise<void> {
    return new Promise((resolveReady, reject) => {
      const timer = setTimeout(() => reject(new FastblockError(ErrorCode.TIMEOUT, `shard ${w.shard} did not start in ${WORKER_START_TIMEOUT_MS} ms`, { shard: w.shard })), WORKER_START_TIMEOUT_MS);
      const onMessage = (message: ToMain) => {
        if (message.type === 'ready') {
          clearTimeout(timer);
          w.worker.off('message', onMessage);
          resolveReady();
        } else if (message.type === 'failed') {
          clearTimeout(timer);
          w.worker.off('message', onMessage);
          reject(new FastblockError(ErrorCode.INTERNAL, `shard ${w.shard} failed to start: ${message.message}`, { shard: w.shard }));
        }
      };
      w.worker.on('message', onMessage);
    });
  }

  private onWorkerMessage(shard: number, message: ToMain): void {
    switch (message.type) {
      case 'reports':
        this.reportWaiters.get(message.id)?.(message);
        break;
      case 'transfer': {
        // Route to the shard that hosts the PG (its replica on this OSD says which).
        const mapping = this.monitors?.map?.pgs.find((p) => p.pool === message.pool && p.index === message.index);
        const target = mapping?.replicas.find((r) => r.osd === this.osdId)?.shard ?? shard;
        this.workers[target]?.worker.postMessage({ type: 'transfer', pool: message.pool, index: message.index, toOsd: message.toOsd } satisfies ToWorker);
        break;
      }
    }
  }

  private onMap(map: ClusterMap): void {
    this.options.logger.debug({ epoch: map.epoch, pgs: map.pgs.length }, 'cluster map');
    this.broadcast({ type: 'map', map });
  }

  private broadcast(message: ToWorker): void {
    for (const w of this.workers) w.worker.postMessage(message);
  }

  /** Every shard's PG reports and figures (a shard that does not answer in time is left out). */
  async survey(timeoutMs = 2000): Promise<ShardSurvey[]> {
    const all = await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<ShardSurvey | undefined>((resolveSurvey) => {
            const id = this.nextReport++;
            const timer = setTimeout(() => {
              this.reportWaiters.delete(id);
              resolveSurvey(undefined);
            }, timeoutMs);
            this.reportWaiters.set(id, (survey) => {
              clearTimeout(timer);
              this.reportWaiters.delete(id);
              resolveSurvey(survey);
            });
            w.worker.postMessage({ type: 'report', id } satisfies ToWorker);
          }),
      ),
    );
    return all.filter((s): s is ShardSurvey => s !== undefined);
  }

  private async sendHeartbeat(): Promise<void> {
    if (!this.monitors || this.stopping) return;
    try {
      const shards = await this.survey();
      // A shard that did not answer would make the OSD look emptier than it is: usage waits for all.
      const figures = shards.map((s) => s.figures);
      const complete = shards.length === this.workers.length;
      const usage = complete ? { ...osdStoreUsage(figures), commitLatencyUs: this.commitLatency.sample(figures) } : { capacityBytes: 0, usedBytes: 0 };
      const reply = await this.monitors.heartbeat({ osdId: this.osdId, epoch: this.monitors.map?.epoch ?? 0, pgs: shards.flatMap((s) => s.reports), ...usage });
      const fullOsds = [...(reply.fullOsds ?? [])].sort((a, b) => a - b);
      if (fullOsds.join(',') !== this.fullOsds.join(',')) {
        this.fullOsds = fullOsds;
        this.broadcast({ type: 'fullOsds', osds: fullOsds });
      }
    } catch (err) {
      this.options.logger.warn({ err }, 'heartbeat to the monitor failed');
    }
  }

  get map(): ClusterMap | undefined {
    return this.monitors?.map;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.monitors?.close();
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((done) => {
            // A shard that does not finish stopping in time is terminated.
            const timer = setTimeout(() => void w.worker.terminate(), 10_000);
            w.worker.once('exit', () => {
              clearTimeout(timer);
              done();
            });
            w.worker.postMessage({ type: 'stop' } satisfies ToWorker);
          }),
      ),
    );
    this.workers = [];
  }
}
