/**
 * The `vhost` section of the configuration: controllers created at start, each
 * "pool/image=/path/to.sock[:QUEUES[:CACHE]]", and the write-back cache's settings.
 */
import type { Schema } from 'convict';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

import { CACHE_MODES, DEFAULT_READ_CACHE_MIB, DEFAULT_WRITE_BACK_DIR, DEFAULT_WRITE_BACK_HOLD_MS, DEFAULT_WRITE_BACK_MIB, MAX_WRITE_BACK_MIB, MIN_WRITE_BACK_MIB, isCacheMode, type CacheMode, WRITE_BACK_FORMATS } from '../../kernel/block/export-cache.js';

// The cache modes are every frontend's (kernel/block/export-cache.ts); re-exported for this plugin's modules and the CLI.
export { CACHE_MODES, MAX_WRITE_BACK_MIB, MIN_WRITE_BACK_MIB, isCacheMode, type CacheMode };

export interface VhostConfig {
  readonly controllers: readonly string[];
  /** Queues of a controller whose entry names none. */
  readonly defaultQueues: number;
  /** How often volumes are checked for a resize to tell the front-end of (ms). */
  readonly sizeCheckMs: number;
  /** Cache mode of a controller whose entry (or `vhost create`) names none. */
  readonly cache: CacheMode;
  /** Where write-back logs live, one file per controller (tmpfs by default, like a disk's DRAM cache). */
  readonly writeBackDir: string;
  /** Ring size of each write-back log: the most acknowledged data not yet in the volume (MiB). */
  readonly writeBackMiB: number;
  /** How long a write stays in the log so that later writes of its object go back with it (ms; 0: at once). */
  readonly writeBackHoldMs: number;
  /** Read cache of each writeback controller, in the gateway's memory (MiB; 0: none). */
  readonly readCacheMiB: number;
}

export const vhostConfigSchema: Schema<VhostConfig> = {
  controllers: { doc: 'controllers created at start: "pool/image=/path/sock[:queues[:writethrough|writeback]]"', format: Array, default: [] },
  defaultQueues: { doc: 'virtqueues of a controller whose entry names none', format: 'nat', default: 2 },
  sizeCheckMs: {
    doc: 'how often volumes are checked for a resize, which the front-end is told of through a config change notice (ms)',
    format: (value: unknown) => {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 10) throw new Error('must be an integer of at least 10 (ms)');
    },
    default: 1000,
  },
  cache: {
    doc:
      'cache mode of a controller that names none: writethrough (a write is acknowledged once the volume has it) or ' +
      'writeback (once it is in the write-back log under writeBackDir; it reaches the volume in the background, a guest flush waits for it)',
    format: WRITE_BACK_FORMATS.cache,
    default: 'writethrough',
  },
  writeBackDir: {
    doc: 'directory of the write-back logs, one file per writeback controller (created with mode 0700 when missing); tmpfs: a host reboot loses what the guests never flushed, as a disk cache would',
    format: WRITE_BACK_FORMATS.writeBackDir,
    default: DEFAULT_WRITE_BACK_DIR,
  },
  writeBackMiB: {
    doc: 'ring size of each writeback controller\'s log (MiB), a file mapped into the gateway\'s memory: the most acknowledged data not yet in the volume',
    format: WRITE_BACK_FORMATS.writeBackMiB,
    default: DEFAULT_WRITE_BACK_MIB,
  },
  writeBackHoldMs: {
    doc:
      'how long a write of a writeback controller stays in its log before its write-back starts (ms, 0 to 10000; 0: at once), so that later writes of its object ' +
      'go to the cluster with it in one request. A guest flush, a FUA write, a read of those bytes and a ring over half full never wait for it',
    format: WRITE_BACK_FORMATS.writeBackHoldMs,
    default: DEFAULT_WRITE_BACK_HOLD_MS,
  },
  readCacheMiB: {
    doc: 'read cache of each writeback controller (MiB; 0: none), in the gateway\'s memory: a guest read of cached blocks is served without a request to the cluster. Writethrough controllers have none',
    format: WRITE_BACK_FORMATS.readCacheMiB,
    default: DEFAULT_READ_CACHE_MIB,
  },
};

export const VHOST_CONFIG_DEFAULTS: VhostConfig = {
  controllers: [],
  defaultQueues: 2,
  sizeCheckMs: 1000,
  cache: 'writethrough',
  writeBackDir: DEFAULT_WRITE_BACK_DIR,
  writeBackMiB: DEFAULT_WRITE_BACK_MIB,
  writeBackHoldMs: DEFAULT_WRITE_BACK_HOLD_MS,
  readCacheMiB: DEFAULT_READ_CACHE_MIB,
};

export interface ControllerEntry {
  readonly volume: string;
  readonly socket: string;
  readonly queues: number;
  /** The mode the entry names; undefined: the configured default. */
  readonly cache: CacheMode | undefined;
}

/**
 * "pool/image=/path/sock", "...:QUEUES", "...:QUEUES:CACHE" or "...::CACHE" (default queues).
 * An unknown cache mode is refused rather than served in a mode the operator did not ask for.
 */
export function parseControllerEntry(entry: string, defaultQueues: number): ControllerEntry {
  const match = /^([^=]+)=([^:]+)(?::(\d+)|:(\d*):([^:]*))?$/.exec(entry);
  if (!match) {
    throw new FastblockError(ErrorCode.CONFIG_INVALID, `vhost controller entry "${entry}" is not "pool/image=/path/sock[:queues[:cache]]"`, { entry });
  }
  const mode = match[5];
  const queues = match[3] ?? match[4];
  let cache: CacheMode | undefined;
  if (mode !== undefined) {
    if (!isCacheMode(mode)) {
      throw new FastblockError(ErrorCode.CONFIG_INVALID, `vhost controller entry "${entry}": cache mode "${mode}" is not one of ${CACHE_MODES.join(', ')}`, {
        entry,
        cache: mode,
      });
    }
    cache = mode;
  }
  return { volume: match[1]!, socket: match[2]!, queues: queues ? Number(queues) : defaultQueues, cache };
}
