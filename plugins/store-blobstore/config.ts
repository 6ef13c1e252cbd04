/**
 * The `blobstore` section of the configuration (convict schema; FASTBLOCK_BLOBSTORE_* in the
 * environment). By default each shard's store is the file the OSD names for it; with `device`,
 * every shard gets its own region of that one file or block device instead.
 */
import type { Schema } from 'convict';
import type { IoChoice } from './bdev/file-bdev.js';

export interface BlobstoreConfig {
  /** Bytes per cluster: the allocation unit of blobs (a power of two, at least 4 KiB). */
  readonly clusterSize: number;
  /** md pages reserved at format; 0: one per cluster. */
  readonly mdPages: number;
  /** uring, fs, or auto (io_uring when it works here). FASTBLOCK_STORE_IO overrides it. */
  readonly io: IoChoice;
  /** A file or block device shared by all shards, one region each; empty: one file per shard. */
  readonly device: string;
  /** Bytes of each shard's region of `device`; 0: the store size the OSD asks for. */
  readonly regionBytes: number;
  /** MiB of object data each shard keeps cached in memory for reads (bdev/cached-bdev.ts); 0: none. */
  readonly cacheMb: number;
}

const MIB = 1024 * 1024;

export const blobstoreConfigSchema: Schema<BlobstoreConfig> = {
  clusterSize: { doc: 'blobstore cluster size in bytes (power of two, >= 4096)', format: 'nat', default: MIB },
  mdPages: { doc: 'md pages reserved at format (0: one per cluster)', format: 'nat', default: 0 },
  io: { doc: 'device I/O backend: auto, uring or fs', format: ['auto', 'uring', 'fs'], default: 'auto' },
  device: { doc: 'file or block device shared by all shards, one region each ("" : a file per shard)', format: String, default: '' },
  regionBytes: { doc: "bytes of each shard's region of device (0: the OSD's store size)", format: 'nat', default: 0 },
  cacheMb: { doc: 'MiB of object data each shard caches in memory for reads (0: no cache)', format: 'nat', default: 256 },
};

export const BLOBSTORE_CONFIG_DEFAULTS: BlobstoreConfig = { clusterSize: MIB, mdPages: 0, io: 'auto', device: '', regionBytes: 0, cacheMb: 256 };
