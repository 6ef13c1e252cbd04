/**
 * The `nvmf` section of the configuration (convict schema; the kernel's loader also derives
 * FASTBLOCK_NVMF_* environment names) and its mapping onto the target's options.
 */
import type { Schema } from 'convict';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { DEFAULT_NVMF_OPTIONS, type NvmfTargetOptions } from './target.js';

export interface NvmfConfig {
  /** Listen address; 127.0.0.1 unless hosts elsewhere are meant to connect. */
  readonly listen: string;
  /** TCP port (4420 is NVMe/TCP's registered port; 0 picks a free one). */
  readonly port: number;
  /** Address the discovery log advertises ("" : the listen address). */
  readonly advertiseAddress: string;
  /** Subsystems created at start: "pool/image" or "pool/image=NQN". */
  readonly exports: readonly string[];
  readonly nqnPrefix: string;
  readonly maxIoQueues: number;
  readonly queueDepth: number;
  readonly maxTransferKiB: number;
  readonly inCapsuleDataSize: number;
  readonly maxH2CData: number;
  readonly keepAliveGraceMs: number;
  readonly sizeCheckMs: number;
}

export const nvmfConfigSchema: Schema<NvmfConfig> = {
  listen: { doc: 'NVMe/TCP listen address', format: String, default: DEFAULT_NVMF_OPTIONS.listenAddress },
  port: { doc: 'NVMe/TCP listen port (0: any free port)', format: 'port', default: DEFAULT_NVMF_OPTIONS.port },
  advertiseAddress: { doc: 'address the discovery log gives hosts ("": the listen address)', format: String, default: '' },
  exports: { doc: 'subsystems created at start: "pool/image" or "pool/image=NQN"', format: Array, default: [] },
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
  };
}

/** "pool/image" or "pool/image=nqn...." */
export function parseExportEntry(entry: string): { volume: string; nqn?: string } {
  const match = /^([^=\s]+)(?:=(\S+))?$/.exec(entry);
  if (!match) throw new FastblockError(ErrorCode.CONFIG_INVALID, `nvmf export entry "${entry}" is not "pool/image" or "pool/image=NQN"`, { entry });
  return match[2] ? { volume: match[1]!, nqn: match[2] } : { volume: match[1]! };
}
