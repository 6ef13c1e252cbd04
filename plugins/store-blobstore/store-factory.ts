/** The StoreFactory the plugin registers: opens each shard's store with the plugin's tuning. */
import type { ShardStore, ShardStoreOptions, StoreFactory } from '../../kernel/contracts/store.js';
import { BlobShardStore, type BlobShardStoreTuning } from './shard-store.js';

export class BlobStoreFactory implements StoreFactory {
  readonly name = 'blobstore';

  constructor(private readonly tuning: BlobShardStoreTuning = {}) {}

  open(options: ShardStoreOptions): Promise<ShardStore> {
    return BlobShardStore.open({ ...this.tuning, ...options });
  }
}
