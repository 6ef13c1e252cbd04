/**
 * Controller properties (the fabrics form of the NVMe registers) and their bit fields.
 */

export const Property = {
  CAP: 0x00,
  VS: 0x08,
  CC: 0x14,
  CSTS: 0x1c,
} as const;

/** NVMe 1.3, as Linux nvmet reports: the base Linux hosts are tested against. */
export const NVME_VERSION = 0x00010300;

export const CC = {
  EN: 0x1,
  cssShift: 4,
  mpsShift: 7,
  shnShift: 14,
  iosqesShift: 16,
  iocqesShift: 20,
} as const;

export const CSTS = {
  RDY: 0x1,
  CFS: 0x2,
  shstShift: 2,
} as const;

export const ShutdownStatus = { Normal: 0, Occurring: 1, Complete: 2 } as const;

/** CC.CSS values a host may choose given our CAP.CSS. */
export const CommandSetSelect = { Nvm: 0, AllSupported: 6, AdminOnly: 7 } as const;

export interface CapabilityOptions {
  /** Maximum queue entries, 1-based. */
  readonly maxQueueEntries: number;
}

/**
 * CAP: MQES, CQR (contiguous queues required), TO = 7.5 s, CSS = NVM command set plus "I/O command
 * sets" (so a host may select all supported sets, CC.CSS = 6), MPSMIN = MPSMAX = 4 KiB.
 */
export function capability(options: CapabilityOptions): bigint {
  const mqes = BigInt(options.maxQueueEntries - 1);
  const cqr = 1n << 16n;
  const timeout = 15n << 24n;
  const cssNvm = 1n << 37n;
  const cssIoSets = 1n << 43n;
  return mqes | cqr | timeout | cssNvm | cssIoSets;
}
