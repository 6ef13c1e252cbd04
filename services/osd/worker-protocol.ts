/** Messages between the OSD's main thread and its shard workers (structured-cloned plain data). */
import type { ClusterMap } from '../../kernel/contracts/cluster-map.js';
import type { NetAddress, TransportRecipe } from '../../kernel/contracts/transport.js';
import type { PgReport } from './shard.js';
import type { ShardFigures } from './shard-figures.js';

export interface ShardWorkerData {
  readonly osd: number;
  readonly shard: number;
  readonly listen: NetAddress;
  readonly transport: TransportRecipe;
  /** The daemon's store plugin (its name as loaded: "blobstore", a package or a path). */
  readonly storePlugin: string;
  /** The daemon's effective configuration (plugin sections by name). */
  readonly config: Readonly<Record<string, unknown>>;
  readonly storePath: string;
  readonly storeSizeBytes: number;
  readonly tickMs: number;
  /** The store fraction past which this shard refuses writes (osd.fullRatio). */
  readonly fullRatio: number;
  readonly logLevel: string;
  readonly daemonName: string;
}

export type ToWorker =
  | { readonly type: 'map'; readonly map: ClusterMap }
  | { readonly type: 'transfer'; readonly pool: number; readonly index: number; readonly toOsd: number }
  | { readonly type: 'report'; readonly id: number }
  | { readonly type: 'fullOsds'; readonly osds: readonly number[] }
  | { readonly type: 'stop' };

export type ToMain =
  | { readonly type: 'ready'; readonly address: NetAddress }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'reports'; readonly id: number; readonly reports: PgReport[]; readonly figures: ShardFigures }
  | { readonly type: 'transfer'; readonly pool: number; readonly index: number; readonly toOsd: number }
  | { readonly type: 'stopped' };
