/**
 * Identify data structures (NVMe Base 1.4 / 2.0 figure offsets). Every structure is 4096 bytes.
 */
import { Structure } from './structure.js';
import { NVME_VERSION } from './registers.js';

export const IDENTIFY_LENGTH = 4096;

export const ControllerType = { Io: 1, Discovery: 2 } as const;

/** ONCS bits. */
export const Oncs = { DatasetManagement: 1 << 2, WriteZeroes: 1 << 3 } as const;

export interface ControllerIdentity {
  readonly cntlid: number;
  readonly type: (typeof ControllerType)[keyof typeof ControllerType];
  readonly serial: string;
  readonly model: string;
  readonly firmware: string;
  readonly subnqn: string;
  /** Max data transfer size as a power of two of 4 KiB pages (0: no limit). */
  readonly mdts: number;
  readonly maxCommands: number;
  readonly namespaces: number;
  readonly oncs: number;
  /** Volatile write cache present. */
  readonly volatileWriteCache: boolean;
  /** In-capsule data the I/O queues accept, in bytes. */
  readonly inCapsuleDataSize: number;
  readonly asyncEventLimit: number;
  readonly errorLogEntries: number;
}

export function identifyController(id: ControllerIdentity): Uint8Array {
  const s = new Structure(IDENTIFY_LENGTH);
  s.ascii(4, 20, id.serial).ascii(24, 40, id.model).ascii(64, 8, id.firmware);
  s.u8(72, 6); // RAB
  // CMIC bit 1: the subsystem may have several controllers (one per host association).
  s.u8(76, id.type === ControllerType.Io ? 0x02 : 0x00);
  s.u8(77, id.mdts);
  s.u16(78, id.cntlid);
  s.u32(80, NVME_VERSION);
  // OAES: discovery log change notices on the discovery controller, namespace attribute notices
  // (a resized volume) on an I/O controller.
  s.u32(92, id.type === ControllerType.Discovery ? 1 << 31 : 1 << 8);
  s.u8(111, id.type);
  s.u8(258, 3); // ACL: 4 concurrent Aborts (0's based)
  s.u8(259, id.asyncEventLimit - 1); // AERL, 0's based
  s.u8(260, 0x03); // FRMW: 1 slot, slot 1 read-only
  // LPA: commands supported and effects log, extended Get Log Page data (NUMDU, offsets).
  s.u8(261, id.type === ControllerType.Io ? 0x06 : 0x04);
  s.u8(262, id.errorLogEntries - 1); // ELPE
  s.u16(320, 10); // KAS: keep alive granularity 100 ms * 10
  s.u8(512, 0x66); // SQES: 64-byte entries
  s.u8(513, 0x44); // CQES: 16-byte entries
  s.u16(514, id.maxCommands);
  s.u32(516, id.namespaces);
  s.u16(520, id.oncs);
  s.u8(525, id.volatileWriteCache ? 0x01 : 0x00);
  // SGLS: SGLs supported (no alignment), SGL data block address as offset.
  s.u32(536, 0x1 | (1 << 20));
  s.string(768, 256, id.subnqn);
  // Fabrics: IOCCSZ / IORCSZ in 16-byte units, ICDOFF 0, FCATT dynamic, MSDBD 1.
  s.u32(1792, (64 + id.inCapsuleDataSize) / 16);
  s.u32(1796, 1);
  s.u16(1800, 0);
  s.u8(1802, 0);
  s.u8(1803, 1);
  return s.bytes;
}

export interface NamespaceIdentity {
  readonly blocks: number;
  readonly lbaShift: number;
  readonly nguid: Uint8Array;
}

/** DLFEAT: deallocated blocks read as zeroes; Write Zeroes honours DEAC. */
const DLFEAT = 0x01 | 0x08;

export function identifyNamespace(ns: NamespaceIdentity): Uint8Array {
  const s = new Structure(IDENTIFY_LENGTH);
  s.u64(0, ns.blocks).u64(8, ns.blocks).u64(16, ns.blocks);
  s.u8(25, 0); // NLBAF: one format
  s.u8(26, 0); // FLBAS: format 0
  s.u8(30, 0x01); // NMIC: may be attached to several controllers
  s.u8(33, DLFEAT);
  s.u64(48, BigInt(ns.blocks) << BigInt(ns.lbaShift)); // NVMCAP (low 64 bits of 128)
  s.bytesAt(104, ns.nguid);
  s.u32(128, ns.lbaShift << 16); // LBAF0: no metadata, LBADS
  return s.bytes;
}

/** Active namespace ids greater than `after`, ascending, at most 1024. */
export function activeNamespaceList(nsids: Iterable<number>, after: number): Uint8Array {
  const s = new Structure(IDENTIFY_LENGTH);
  const ids = [...nsids].filter((id) => id > after).sort((a, b) => a - b).slice(0, IDENTIFY_LENGTH / 4);
  ids.forEach((id, i) => s.u32(i * 4, id));
  return s.bytes;
}

const DescriptorType = { Nguid: 2, Uuid: 3, Csi: 4 } as const;

/** Namespace identification descriptors: NGUID, UUID and the command set (NVM). */
export function namespaceDescriptors(nguid: Uint8Array, uuid: Uint8Array): Uint8Array {
  const s = new Structure(IDENTIFY_LENGTH);
  let at = 0;
  const put = (type: number, value: Uint8Array): void => {
    s.u8(at, type).u8(at + 1, value.length).bytesAt(at + 4, value);
    at += 4 + value.length;
  };
  put(DescriptorType.Nguid, nguid);
  put(DescriptorType.Uuid, uuid);
  put(DescriptorType.Csi, Uint8Array.of(0));
  return s.bytes;
}

/** I/O command set combinations: one combination, NVM only. */
export function commandSetCombinations(): Uint8Array {
  return new Structure(IDENTIFY_LENGTH).u64(0, 1).bytes;
}

/** NVM command set specific controller (CNS 6) or namespace (CNS 5) data: no extra limits. */
export function emptyIdentify(): Uint8Array {
  return new Uint8Array(IDENTIFY_LENGTH);
}
