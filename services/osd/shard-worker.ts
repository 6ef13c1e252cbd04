/**
 * The entry of one shard's worker thread. It builds its own transport (from the daemon's
 * transport recipe) and its own store (from the daemon's store plugin), runs a Shard, and talks
 * to the OSD's main thread only for control: maps in, PG reports and leader transfers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { createContainer, TOKENS } from '../../kernel/container.js';
import type { StoreFactory } from '../../kernel/contracts/store.js';
import type { Transport } from '../../kernel/contracts/transport.js';
import { loadPlugin } from '../../kernel/plugin-loader.js';
import { KERNEL_VERSION } from '../../kernel/version.js';
import { MonitorMethods } from '../monitor/protocol.js';
import { DiskRaftStorage } from './disk-raft-storage.js';
import { Shard } from './shard.js';
import { shardFigures } from './shard-figures.js';
import type { ShardWorkerData, ToMain, ToWorker } from './worker-protocol.js';

const data = workerData as ShardWorkerData;
const port = parentPort!;
const logger = pino({ level: data.logLevel, base: { daemon: data.daemonName, osd: data.osd, shard: data.shard } });
const post = (message: ToMain) => port.postMessage(message);

async function main(): Promise<void> {
  const transport = ((await import(data.transport.module)) as { createTransport(options: unknown): Transport }).createTransport({ ...data.transport.options, logLevel: data.logLevel });
  const container = createContainer();
  const plugin = await loadPlugin(data.storePlugin);
  const instance = await plugin.manifest.register(container, (data.config[plugin.manifest.name] ?? {}) as object, {
    logger: logger.child({ plugin: plugin.manifest.name }),
    kernelVersion: KERNEL_VERSION,
    config: data.config,
  });
  await instance?.start?.();
  const store = await container.resolve<StoreFactory>(TOKENS.StoreFactory).open({ shard: data.shard, path: data.storePath, sizeBytes: data.storeSizeBytes, create: true });
  const raftStorage = new DiskRaftStorage(store);
  const shard = new Shard({
    osd: data.osd,
    shard: data.shard,
    listen: data.listen,
    transport,
    store,
    raftStorage,
    logger,
    tickMs: data.tickMs,
    fullRatio: data.fullRatio,
    extraMethods: new Map([
      [
        MonitorMethods.TransferLeader.id,
        (message) => {
          // The monitor calls shard 0 (the OSD's address); the main thread routes to the PG's shard.
          const request = MonitorMethods.TransferLeader.request.decode(message.header);
          post({ type: 'transfer', pool: request.pool, index: request.index, toOsd: request.toOsd });
          return { header: MonitorMethods.TransferLeader.response.encode({ started: true }) };
        },
      ],
    ]),
  });
  const address = await shard.start();
  port.on('message', async (message: ToWorker) => {
    switch (message.type) {
      case 'map':
        shard.setMap(message.map);
        break;
      case 'transfer':
        try {
          shard.transferLeader(message.pool, message.index, message.toOsd);
        } catch (err) {
          // A request the group cannot honour fails that request, never the shard.
          logger.warn({ err, pg: `${message.pool}.${message.index.toString(16)}`, to: message.toOsd }, 'leader transfer failed');
        }
        break;
      case 'fullOsds':
        shard.setFullOsds(message.osds);
        break;
      case 'report':
        post({ type: 'reports', id: message.id, reports: shard.reports(), figures: shardFigures(shard, store) });
        break;
      case 'stop':
        await shard.stop();
        await transport.close();
        await store.close();
        await instance?.stop?.();
        post({ type: 'stopped' });
        // Nothing is left on this thread's loop: let it end on its own rather than be terminated.
        port.close();
        break;
    }
  });
  post({ type: 'ready', address });
}

main().catch((err: unknown) => {
  logger.error({ err }, 'shard failed to start');
  post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
});
