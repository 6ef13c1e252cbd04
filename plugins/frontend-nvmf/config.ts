/**
 * The `nvmf` section of the configuration (convict schema; the kernel's loader also derives
 * FASTBLOCK_NVMF_* environment names) and its mapping onto the target's options.
 */
import type { Schema } from 'convict';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { DEFAULT_NVMF_OPTIONS, type NvmfTargetOptions } from './target.js';
import { CACHE_MODES, DEFAULT_READ_CACHE_MIB, DEFAULT_WRITE_BACK_DIR, DEFAULT_WRITE_BACK_HOLD_MS, DEFAULT_WRITE_BACK_MIB, MAX_WRITE_BACK_MIB, MIN_WRITE_BACK_MIB, isCacheMode, type CacheMode, WRITE_BACK_FORMATS } from '../../kernel/block/export-cache.js';

export { CACHE_MODES, DEFAULT_WRITE_BACK_DIR, DEFAULT_WRITE_BACK_MIB, MAX_WRITE_BACK_MIB, MIN_WRITE_BACK_MIB, isCacheMode, type CacheMode };

export interface NvmfConfig {
  /** Listen address; 127.0.0.1 unless hosts elsewhere are meant to connect. */
  readonly listen: string;
  /** TCP port (4420 is NVMe/TCP's registered port; 0 picks a free one). */
  readonly port: number;
  /** Address the discovery log advertises ("" : the listen address). */
  readonly advertiseAddress: string;
  /**
   * Subsystems created at start: "pool/image" or "pool/image=NQN", the volume optionally followed
   * by ":writeback" or ":writethrough" for a cache mode other than `cache` ("pool/image:writeback=NQN").
   */
  readonly exports: readonly string[];
  readonly nqnPrefix: string;
  readonly maxIoQueues: number;
  readonly queueDepth: number;
  readonly maxTransferKiB: number;
  readonly inCapsuleDataSize: number;
  readonly maxH2CData: number;
  readonly keepAliveGraceMs: number;
  readonly sizeCheckMs: number;
  /** Cache mode of an export whose entry (or `nvmf create`) names none. */
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

export const nvmfConfigSchema: Schema<NvmfConfig> = {
  listen: { doc: 'NVMe/TCP listen address', format: String, default: DEFAULT_NVMF_OPTIONS.listenAddress },
  port: { doc: 'NVMe/TCP listen port (0: any free port)', format: 'port', default: DEFAULT_NVMF_OPTIONS.port },
  advertiseAddress: { doc: 'address the discovery log gives hosts ("": the listen address)', format: String, default: '' },
  exports: {
    doc: 'subsystems created at start: "pool/image[:writethrough|:writeback][=NQN]" (an unknown suffix is refused)',
    format: Array,
    default: [],
  },
  nqnPrefix: { doc: 'prefix of default subsystem NQNs (<prefix>:<pool>:<image>)', format: String, default: DEFAULT_NVMF_OPTIONS.nqnPrefix },
  maxIoQueues: { doc: 'I/O queues per controller', format: 'nat', default: DEFAULT_NVMF_OPTIONS.maxIoQueues },
  queueDepth: { doc: 'entries per I/O submission queue (CAP.MQES + 1)', format: 'nat', default: DEFAULT_NVMF_OPTIONS.maxQueueEntries },
  maxTransferKiB: {
    doc: 'largest transfer of one command in KiB (MDTS; a power of two, at least 4)',
    format: (value: unknown) => {
      if (typeof value !== 'number' || value < 4 || !Number.isInteger(Math.log2(value))) throw new Error('must be a power of two >= 4');
    },
    default: DEFAULT_NVMF_OPTIONS.maxTransferBytes / 1024,
  },
  inCapsuleDataSize: { doc: 'write data carried inside the command capsule, bytes (IOCCSZ)', format: 'nat', default: DEFAULT_NVMF_OPTIONS.inCapsuleDataSize },
  maxH2CData: { doc: 'largest H2CData PDU payload, bytes (MAXH2CDATA)', format: 'nat', default: DEFAULT_NVMF_OPTIONS.maxH2CData },
  keepAliveGraceMs: { doc: 'time past a host keep-alive timeout before its controller is torn down (ms)', format: 'nat', default: DEFAULT_NVMF_OPTIONS.keepAliveGraceMs },
  sizeCheckMs: {
    doc: 'how often exported volumes are checked for a size change, reported to hosts as a namespace attribute notice (ms)',
    format: (value: unknown) => {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 10) throw new Error('must be an integer of at least 10 (ms)');
    },
    default: DEFAULT_NVMF_OPTIONS.sizeCheckMs,
  },
  cache: {
    doc:
      'cache mode of an export that names none: writethrough (a write completes once the volume has it) or writeback ' +
      '(once it is in the write-back log under writeBackDir; it reaches the volume in the background, the namespace reports a volatile write cache and a host Flush waits for it)',
    format: WRITE_BACK_FORMATS.cache,
    default: 'writethrough',
  },
  writeBackDir: {
    doc:
      'directory of the write-back logs, one file per image (created with mode 0700 when missing; the vhost and nbd plugins\' default too, so an image is cached once per host); ' +
      'tmpfs: a host reboot loses what the hosts never flushed, as a disk cache would',
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
      'go to the cluster with it in one request. A host flush, a FUA write, a read of those bytes and a ring over half full never wait for it',
    format: WRITE_BACK_FORMATS.writeBackHoldMs,
    default: DEFAULT_WRITE_BACK_HOLD_MS,
  },
  readCacheMiB: {
    doc: 'read cache of each writeback export (MiB; 0: none), in the gateway\'s memory: a host read of cached blocks is served without a request to the cluster. Writethrough exports have none',
    format: WRITE_BACK_FORMATS.readCacheMiB,
    default: DEFAULT_READ_CACHE_MIB,
  },
};

export function targetOptions(config: NvmfConfig): Partial<NvmfTargetOptions> {
  return {
    listenAddress: config.listen,
    port: config.port,
    ...(config.advertiseAddress ? { advertiseAddress: config.advertiseAddress } : {}),
    nqnPrefix: config.nqnPrefix,
    maxIoQueues: config.maxIoQueues,
    maxQueueEntries: config.queueDepth,
    maxTransferBytes: config.maxTransferKiB * 1024,
    inCapsuleDataSize: config.inCapsuleDataSize,
    maxH2CData: config.maxH2CData,
    keepAliveGraceMs: config.keepAliveGraceMs,
    sizeCheckMs: config.sizeCheckMs,
    cache: config.cache,
    writeBackDir: config.writeBackDir,
    writeBackBytes: config.writeBackMiB * 1024 * 1024,
    readCacheBytes: config.readCacheMiB * 1024 * 1024,
    writeBackHoldMs: config.writeBackHoldMs,
  };
}

export interface ExportEntry {
  readonly volume: string;
  readonly nqn?: string;
  /** The mode the entry names; absent: the configured default. */
  readonly cache?: CacheMode;
}

const ENTRY_FORM = '"pool/image[:writethrough|:writeback][=NQN]"';

/**
 * "pool/image" or "pool/image=NQN", the volume optionally followed by one cache mode suffix,
 * ":writeback" or ":writethrough" ("pool/image:writeback=nqn.2024-01.io.example:vm1"). The suffix
 * sits on the volume, not after the NQN: NQNs contain ':' themselves, volume names do not (pool and
 * image names are letters, digits, '_', '.', '-'). An unknown or repeated suffix is refused rather
 * than served as something the operator did not ask for.
 */
export function parseExportEntry(entry: string): ExportEntry {
  const match = /^([^=\s]+)(?:=(\S+))?$/.exec(entry);
  if (!match) throw new FastblockError(ErrorCode.CONFIG_INVALID, `nvmf export entry "${entry}" is not ${ENTRY_FORM}`, { entry });
  const [volume, ...suffixes] = match[1]!.split(':');
  if (volume === undefined || volume === '') {
    throw new FastblockError(ErrorCode.CONFIG_INVALID, `nvmf export entry "${entry}" is not ${ENTRY_FORM}`, { entry });
  }
  let cache: CacheMode | undefined;
  for (const suffix of suffixes) {
    if (isCacheMode(suffix) && cache === undefined) cache = suffix;
    else {
      const what = isCacheMode(suffix) ? `a repeated cache mode ":${suffix}"` : `unknown suffix ":${suffix}" (allowed: one of :writethrough, :writeback)`;
      throw new FastblockError(ErrorCode.CONFIG_INVALID, `nvmf export entry "${entry}": ${what}`, { entry, suffix });
    }
  }
  return { volume, ...(match[2] ? { nqn: match[2] } : {}), ...(cache ? { cache } : {}) };
}
