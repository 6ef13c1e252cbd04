/**
 * The `blobstore` plugin: local storage of an OSD's shards on a file or block device (SPDK-style
 * blobstore on io_uring; see docs/blobstore-format.md). It provides the StoreFactory; the OSD
 * opens one store per shard, each in its own thread.
 *
 *   fastblockd --plugins tcp,blobstore,osd --set blobstore.clusterSize=1048576 --set blobstore.io=auto
 */
import { constants as bufferConstants } from 'node:buffer';
import { TOKENS } from '../../kernel/container.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { definePlugin } from '../../kernel/plugin.js';
import { uringUnavailableReason } from './bdev/file-bdev.js';
import { blobstoreConfigSchema, type BlobstoreConfig } from './config.js';
import { BlobStoreFactory } from './store-factory.js';

export default definePlugin<BlobstoreConfig>({
  name: 'blobstore',
  kind: 'store',
  version: '0.1.0',
  description: 'StoreFactory on a file or block device: blobstore (io_uring, O_DIRECT), disk_log, object_store, kv_store',
  provides: ['StoreFactory'],
  configSchema: blobstoreConfigSchema,
  register(container, config, { logger }) {
    // The read cache is one buffer per shard: past Node's largest buffer it could not be allocated.
    const largestCacheMb = Math.floor(bufferConstants.MAX_LENGTH / (1024 * 1024));
    if (config.cacheMb > largestCacheMb) {
      throw new FastblockError(ErrorCode.CONFIG_INVALID, `invalid config: blobstore.cacheMb = ${config.cacheMb}: at most ${largestCacheMb} (MiB per shard; 0 turns the read cache off)`, { cacheMb: config.cacheMb, largestCacheMb });
    }
    if (config.io !== 'fs') {
      const reason = uringUnavailableReason();
      if (reason !== undefined) logger.warn({ reason }, 'io_uring unavailable here; stores will use the fs fallback');
    }
    container.register(TOKENS.StoreFactory, { useValue: new BlobStoreFactory(config, logger) });
  },
});
