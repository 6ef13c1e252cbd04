/**
 * The `nbd` section of the configuration: a convict schema (validated by the kernel's config
 * loader, which also derives FASTBLOCK_NBD_* environment names) and the typed settings the
 * frontend runs with, and the export entries "pool/image[:ro][:writethrough|:writeback]".
 */
import type { Schema } from 'convict';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

import { CACHE_MODES, DEFAULT_READ_CACHE_MIB, DEFAULT_WRITE_BACK_DIR, DEFAULT_WRITE_BACK_HOLD_MS, DEFAULT_WRITE_BACK_MIB, MAX_WRITE_BACK_MIB, MIN_WRITE_BACK_MIB, isCacheMode, type CacheMode, WRITE_BACK_FORMATS } from '../../kernel/block/export-cache.js';

// The cache modes are every frontend's (kernel/block/export-cache.ts); re-exported for this plugin's modules and the CLI.
export { CACHE_MODES, DEFAULT_WRITE_BACK_DIR, MAX_WRITE_BACK_MIB, MIN_WRITE_BACK_MIB, isCacheMode, type CacheMode };

export interface NbdConfig {
  /** Address to listen on; 127.0.0.1 unless the gateway is meant to be reached from elsewhere. */
  readonly host: string;
  /** TCP port; 0 picks a free one (read it back from the frontend). */
  readonly port: number;
  /**
   * Volumes exported from start: "pool/image", with ":ro" for a read-only export and/or
   * ":writeback" / ":writethrough" for a cache mode other than `cache`.
   */
  readonly exports: readonly string[];
  /** Also serve any volume the block provider can open, by its name, without createExport(). */
  readonly dynamicExports: boolean;
  /** Export a client gets when it asks for the empty (default) name. */
  readonly defaultExport: string;
  readonly maxConnections: number;
  /** Requests in flight per connection before the server stops reading that socket. */
  readonly maxInFlight: number;
  /** Largest READ/WRITE payload (bytes); advertised as the maximum block size. */
  readonly maxPayload: number;
  /** Payload bytes in flight over all connections; past it no connection reads new requests. */
  readonly maxInFlightBytes: number;
  /** A client that has not finished negotiating by then is disconnected. */
  readonly handshakeTimeoutMs: number;
  /** Cache mode of an export whose entry (or `nbd create`) names none, dynamic exports included. */
  readonly cache: CacheMode;
  /** Where write-back logs live, one file per image (tmpfs by default, like a disk's DRAM cache). */
  readonly writeBackDir: string;
  /** Ring size of each write-back log: the most acknowledged data not yet in the volume (MiB). */
  readonly writeBackMiB: number;
  /** How long a write stays in the log so that later writes of its object go back with it (ms; 0: at once). */
  readonly writeBackHoldMs: number;
  /** Read cache of each writeback export, in the gateway's memory (MiB; 0: none). */
  readonly readCacheMiB: number;
}

const MIB = 1024 * 1024;

export const nbdConfigSchema: Schema<NbdConfig> = {
  host: { doc: 'NBD listen address', format: String, default: '127.0.0.1' },
  port: { doc: 'NBD listen port (0: any free port)', format: 'port', default: 10809 },
  exports: {
    doc: 'volumes exported at start: "pool/image[:ro][:writethrough|:writeback]" (":ro": read-only, never cached; an unknown suffix is refused)',
    format: Array,
    default: [],
  },
  dynamicExports: { doc: 'serve any volume the block provider can open', format: Boolean, default: true },
  defaultExport: { doc: 'volume served for the empty export name ("" for none)', format: String, default: '' },
  maxConnections: { doc: 'simultaneous client connections', format: 'nat', default: 1024 },
  maxInFlight: { doc: 'requests in flight per connection', format: 'nat', default: 256 },
  maxPayload: { doc: 'largest read/write payload in bytes', format: 'nat', default: 32 * MIB },
  maxInFlightBytes: { doc: 'payload bytes in flight over all connections', format: 'nat', default: 1024 * MIB },
  handshakeTimeoutMs: { doc: 'time allowed for negotiation (ms)', format: 'nat', default: 10_000 },
  cache: {
    doc:
      'cache mode of an export that names none (dynamic exports too): writethrough (a write is acknowledged once the volume has it) or ' +
      'writeback (once it is in the write-back log under writeBackDir; it reaches the volume in the background, a client flush waits for it)',
    format: WRITE_BACK_FORMATS.cache,
    default: 'writethrough',
  },
  writeBackDir: {
    doc:
      'directory of the write-back logs, one file per image (created with mode 0700 when missing; the vhost plugin\'s default too, so an image is cached once per host); ' +
      'tmpfs: a host reboot loses what the clients never flushed, as a disk cache would',
    format: WRITE_BACK_FORMATS.writeBackDir,
    default: DEFAULT_WRITE_BACK_DIR,
  },
  writeBackMiB: {
    doc: 'ring size of each writeback export\'s log (MiB), a file mapped into the gateway\'s memory: the most acknowledged data not yet in the volume',
    format: WRITE_BACK_FORMATS.writeBackMiB,
    default: DEFAULT_WRITE_BACK_MIB,
  },
  writeBackHoldMs: {
    doc:
      'how long a write of a writeback export stays in its log before its write-back starts (ms, 0 to 10000; 0: at once), so that later writes of its object ' +
      'go to the cluster with it in one request. A client flush, a FUA write, a read of those bytes and a ring over half full never wait for it',
    format: WRITE_BACK_FORMATS.writeBackHoldMs,
    default: DEFAULT_WRITE_BACK_HOLD_MS,
  },
  readCacheMiB: {
    doc: 'read cache of each writeback export (MiB; 0: none), in the gateway\'s memory: a read of cached blocks is served without a request to the cluster. Writethrough exports have none',
    format: WRITE_BACK_FORMATS.readCacheMiB,
    default: DEFAULT_READ_CACHE_MIB,
  },
};

/** The schema's defaults, for embedding the frontend without the config loader (tests, tools). */
export const NBD_CONFIG_DEFAULTS: NbdConfig = {
  host: '127.0.0.1',
  port: 10809,
  exports: [],
  dynamicExports: true,
  defaultExport: '',
  maxConnections: 1024,
  maxInFlight: 256,
  maxPayload: 32 * MIB,
  maxInFlightBytes: 1024 * MIB,
  handshakeTimeoutMs: 10_000,
  cache: 'writethrough',
  writeBackDir: DEFAULT_WRITE_BACK_DIR,
  writeBackMiB: DEFAULT_WRITE_BACK_MIB,
  writeBackHoldMs: DEFAULT_WRITE_BACK_HOLD_MS,
  readCacheMiB: DEFAULT_READ_CACHE_MIB,
};

export interface ExportEntry {
  readonly volume: string;
  readonly readOnly: boolean;
  /** The mode the entry names; undefined: the configured default. */
  readonly cache: CacheMode | undefined;
}

/**
 * "pool/image", then optional suffixes in any order, each at most once: ":ro" and one cache mode
 * (":writeback" or ":writethrough"). Volume names have no ':' (pool and image names are letters,
 * digits, '_', '.', '-'), so everything after the first ':' is a suffix. An unknown or repeated
 * suffix is refused rather than served as something the operator did not ask for. ":ro:writeback"
 * parses (the frontend serves a read-only export writethrough: it has no writes to cache).
 */
export function parseExportEntry(entry: string): ExportEntry {
  const [volume, ...suffixes] = entry.split(':');
  if (volume === undefined || volume === '') {
    throw new FastblockError(ErrorCode.CONFIG_INVALID, `nbd export entry "${entry}" is not "pool/image[:ro][:writethrough|:writeback]"`, { entry });
  }
  let readOnly = false;
  let cache: CacheMode | undefined;
  for (const suffix of suffixes) {
    if (suffix === 'ro' && !readOnly) readOnly = true;
    else if (isCacheMode(suffix) && cache === undefined) cache = suffix;
    else {
      const repeated = suffix === 'ro' || isCacheMode(suffix);
      throw new FastblockError(
        ErrorCode.CONFIG_INVALID,
        `nbd export entry "${entry}": ${repeated ? 'a repeated' : 'unknown'} suffix ":${suffix}" (allowed: :ro and one of ${CACHE_MODES.map((m) => `:${m}`).join(', ')})`,
        { entry, suffix },
      );
    }
  }
  return { volume, readOnly, cache };
}
