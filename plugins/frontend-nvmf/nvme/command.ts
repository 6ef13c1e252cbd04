/**
 * A submission queue entry (64 bytes) as it arrived in a CapsuleCmd, read in place, and the completion
 * queue entry (16 bytes) the controller answers with.
 */

export const SQE_LENGTH = 64;
export const CQE_LENGTH = 16;

/** SQE byte offsets. CDW10 starts at 40; a Fabrics command's type is byte 4 (where NSID would be). */
export const SqeField = { opcode: 0, flags: 1, cid: 2, nsid: 4, fctype: 4, sgl: 24, cdw10: 40 } as const;

/** PSDT (flags bits 7:6): 1 and 2 select SGLs (what fabrics require); 0 is PRPs. */
const PSDT_SGL_CONTIGUOUS_METADATA = 0x1;
const PSDT_SGL_METADATA_SGL = 0x2;

export class SubmissionEntry {
  private readonly view: DataView;

  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, SQE_LENGTH);
  }

  get opcode(): number {
    return this.bytes[SqeField.opcode]!;
  }

  get cid(): number {
    return this.view.getUint16(SqeField.cid, true);
  }

  get nsid(): number {
    return this.view.getUint32(SqeField.nsid, true);
  }

  get fctype(): number {
    return this.bytes[SqeField.fctype]!;
  }

  get usesSgl(): boolean {
    const psdt = this.bytes[SqeField.flags]! >> 6;
    return psdt === PSDT_SGL_CONTIGUOUS_METADATA || psdt === PSDT_SGL_METADATA_SGL;
  }

  /** Fused operation bits (flags 1:0); this target supports none. */
  get fused(): number {
    return this.bytes[SqeField.flags]! & 0x3;
  }

  /** SGL1 address: for in-capsule data, the offset into the capsule's data. */
  get sglAddress(): bigint {
    return this.view.getBigUint64(SqeField.sgl, true);
  }

  get sglLength(): number {
    return this.view.getUint32(SqeField.sgl + 8, true);
  }

  /** SGL1 descriptor identifier: type << 4 | subtype. */
  get sglType(): number {
    return this.bytes[SqeField.sgl + 15]!;
  }

  /** Command dword n (10..15). */
  cdw(n: number): number {
    return this.view.getUint32(SqeField.cdw10 + (n - 10) * 4, true);
  }

  u8(offset: number): number {
    return this.bytes[offset]!;
  }

  u16(offset: number): number {
    return this.view.getUint16(offset, true);
  }

  u32(offset: number): number {
    return this.view.getUint32(offset, true);
  }

  u64(offset: number): bigint {
    return this.view.getBigUint64(offset, true);
  }
}

export interface Completion {
  readonly status: number;
  readonly dw0: number;
  readonly dw1: number;
}

export function encodeCqe(into: Uint8Array, offset: number, c: Completion, sqhd: number, sqid: number, cid: number): void {
  const view = new DataView(into.buffer, into.byteOffset + offset, CQE_LENGTH);
  view.setUint32(0, c.dw0 >>> 0, true);
  view.setUint32(4, c.dw1 >>> 0, true);
  view.setUint16(8, sqhd, true);
  view.setUint16(10, sqid, true);
  view.setUint16(12, cid, true);
  view.setUint16(14, c.status, true);
}
