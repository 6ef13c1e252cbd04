/**
 * The StoreFactory the plugin registers: opens each shard's store with the plugin's settings.
 * With a shared `device`, shard s gets region [s * region, (s + 1) * region) of it.
 */
import type { Logger } from '../../kernel/logger.js';
import type { ShardStore, ShardStoreOptions, StoreFactory } from '../../kernel/contracts/store.js';
import { BLOBSTORE_CONFIG_DEFAULTS, type BlobstoreConfig } from './config.js';
import { BlobShardStore } from './shard-store.js';

export class BlobStoreFactory implements StoreFactory {
  readonly name = 'blobstore';

  constructor(
    private readonly config: Partial<BlobstoreConfig> = {},
    private readonly logger?: Logger,
  ) {}

  open(options: ShardStoreOptions): Promise<ShardStore> {
    const c = { ...BLOBSTORE_CONFIG_DEFAULTS, ...this.config };
    const region = c.regionBytes || options.sizeBytes;
    const placement = c.device === '' ? {} : { path: c.device, sizeBytes: region, offsetBytes: options.shard * region };
    return BlobShardStore.open({
      ...options,
      ...placement,
      clusterSize: c.clusterSize,
      mdPages: c.mdPages || undefined,
      io: c.io,
      cacheBytes: c.cacheMb * 1024 * 1024,
      logger: this.logger,
    });
  }
}
