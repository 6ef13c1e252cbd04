/** The `osd` config section. */
import type { Schema } from 'convict';
import { hostname } from 'node:os';

export interface OsdConfig {
  /** Monitor addresses, comma-separated HOST:PORT. */
  readonly monitors: string;
  /** Address clients and other OSDs reach shard 0 at; shard s listens on port + s. Port 0 (one shard only): any free port. */
  readonly listen: string;
  readonly shards: number;
  /** Where the OSD keeps its id and each shard's store file (shard-<s>.blob). */
  readonly dataDir: string;
  /** Size of each shard's store file when it is created. */
  readonly storeSizeMb: number;
  /** Host name (also the default failure domain). */
  readonly host: string;
  readonly failureDomain: string;
  readonly weight: number;
  /** Raft clock period (ms); elections take 10 to 20 of these. */
  readonly tickMs: number;
  readonly heartbeatMs: number;
  /** The store plugin each shard thread loads for its own store; empty: the StoreFactory's name. */
  readonly storePlugin: string;
  /**
   * A shard whose store is fuller than this fraction refuses new writes (NO_SPACE) as their
   * leader, keeping room for the raft logs and metadata; discards, which free space, still go.
   */
  readonly fullRatio: number;
}

export const osdConfigSchema: Schema<OsdConfig> = {
  monitors: { doc: 'Monitor addresses, comma-separated HOST:PORT', format: String, default: '127.0.0.1:7700' },
  listen: { doc: 'Data address of shard 0 (shard s: port + s); port 0 = any free port (one shard only)', format: String, default: '127.0.0.1:7800' },
  shards: { doc: 'Shards (worker threads, one store each)', format: 'nat', default: 1 },
  dataDir: { doc: 'Directory of the OSD id file and the shard store files', format: String, default: './fastblock-data/osd' },
  storeSizeMb: { doc: 'Size of each shard store file at creation (MiB)', format: 'nat', default: 4096 },
  host: { doc: 'Host name, the default failure domain', format: String, default: hostname() },
  failureDomain: { doc: 'Failure domain (empty: the host)', format: String, default: '' },
  weight: { doc: 'Relative capacity for placement', format: Number, default: 1 },
  tickMs: { doc: 'Raft tick (ms)', format: 'nat', default: 100 },
  heartbeatMs: { doc: 'Heartbeat to the monitor every (ms)', format: 'nat', default: 2000 },
  storePlugin: { doc: 'Store plugin each shard thread loads (empty: the name of the loaded StoreFactory)', format: String, default: '' },
  fullRatio: {
    doc: 'A shard store fuller than this fraction (0..1] refuses writes with NO_SPACE as their leader; discards still go',
    format: (value: unknown) => {
      if (typeof value !== 'number' || !(value > 0 && value <= 1)) throw new Error('must be a fraction in (0, 1], e.g. 0.95');
    },
    default: 0.95,
  },
};
