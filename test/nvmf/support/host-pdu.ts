/**
 * The host side of NVMe/TCP, written for the tests from the specification's tables: encoders for
 * what a host sends (ICReq, CapsuleCmd, H2CData, H2CTermReq), a builder for SQEs, and a stream
 * decoder for what a controller sends, checking digests and the common header's arithmetic.
 */
import { crc32c } from '../../../plugins/frontend-nvmf/tcp/crc32c.js';

export const T = { ICReq: 0, ICResp: 1, H2CTermReq: 2, C2HTermReq: 3, CapsuleCmd: 4, CapsuleResp: 5, H2CData: 6, C2HData: 7, R2T: 9 } as const;
export const F = { HDGST: 1, DDGST: 2, LAST: 4, SUCCESS: 8 } as const;

export interface Digests {
  readonly header: boolean;
  readonly data: boolean;
}

export const NO_DIGESTS: Digests = { header: false, data: false };

function le32(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  return b;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length)));
}

export function icReq(options: { pfv?: number; hpda?: number; dgst?: number; maxr2t?: number } = {}): Uint8Array {
  const b = new Uint8Array(128);
  const v = new DataView(b.buffer);
  b[0] = T.ICReq;
  b[2] = 128;
  v.setUint32(4, 128, true);
  v.setUint16(8, options.pfv ?? 0, true);
  b[10] = options.hpda ?? 0;
  b[11] = options.dgst ?? 0;
  v.setUint32(12, options.maxr2t ?? 0, true);
  return b;
}

/** A PDU with a fixed header, optional data, digests as negotiated; data starts right after the header. */
export function pdu(type: number, flags: number, header: Uint8Array, data: Uint8Array | undefined, digests: Digests): Uint8Array {
  const hlen = header.length;
  const hd = digests.header;
  const dd = digests.data && data !== undefined && data.length > 0;
  const pdo = data && data.length > 0 ? hlen + (hd ? 4 : 0) : 0;
  const plen = hlen + (hd ? 4 : 0) + (data?.length ?? 0) + (dd ? 4 : 0);
  const h = Uint8Array.from(header);
  h[0] = type;
  h[1] = flags | (hd ? F.HDGST : 0) | (dd ? F.DDGST : 0);
  h[2] = hlen;
  h[3] = pdo;
  new DataView(h.buffer).setUint32(4, plen, true);
  const parts: Uint8Array[] = [h];
  if (hd) parts.push(le32(crc32c(h)));
  if (data && data.length > 0) {
    parts.push(data);
    if (dd) parts.push(le32(crc32c(data)));
  }
  return concat(parts);
}

export function capsuleCmd(sqe: Uint8Array, data: Uint8Array | undefined, digests: Digests = NO_DIGESTS): Uint8Array {
  const header = new Uint8Array(72);
  header.set(sqe, 8);
  return pdu(T.CapsuleCmd, 0, header, data, digests);
}

export function h2cData(cccid: number, ttag: number, datao: number, data: Uint8Array, last: boolean, digests: Digests = NO_DIGESTS): Uint8Array {
  const header = new Uint8Array(24);
  const v = new DataView(header.buffer);
  v.setUint16(8, cccid, true);
  v.setUint16(10, ttag, true);
  v.setUint32(12, datao, true);
  v.setUint32(16, data.length, true);
  return pdu(T.H2CData, last ? F.LAST : 0, header, data, digests);
}

export function h2cTermReq(fes: number): Uint8Array {
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  b[0] = T.H2CTermReq;
  b[2] = 24;
  v.setUint32(4, 24, true);
  v.setUint16(8, fes, true);
  return b;
}

export const SGL_ICD = 0x01;
export const SGL_TRANSPORT = 0x5a;

export interface SqeFields {
  opcode: number;
  cid: number;
  nsid?: number;
  fctype?: number;
  cdw10?: number;
  cdw11?: number;
  cdw12?: number;
  cdw13?: number;
  cdw14?: number;
  cdw15?: number;
  sglType?: number;
  sglLength?: number;
  sglAddress?: number;
  /** PSDT; 1 (SGL) unless a test wants it wrong. */
  psdt?: number;
}

export function sqe(f: SqeFields): Uint8Array {
  const b = new Uint8Array(64);
  const v = new DataView(b.buffer);
  b[0] = f.opcode;
  b[1] = (f.psdt ?? 1) << 6;
  v.setUint16(2, f.cid, true);
  if (f.fctype !== undefined) b[4] = f.fctype;
  else v.setUint32(4, f.nsid ?? 0, true);
  v.setBigUint64(24, BigInt(f.sglAddress ?? 0), true);
  v.setUint32(32, f.sglLength ?? 0, true);
  b[39] = f.sglType ?? SGL_TRANSPORT;
  const dws = [f.cdw10, f.cdw11, f.cdw12, f.cdw13, f.cdw14, f.cdw15];
  dws.forEach((dw, i) => v.setUint32(40 + i * 4, (dw ?? 0) >>> 0, true));
  return b;
}

export interface ConnectFields {
  cid?: number;
  qid: number;
  sqsize: number;
  kato?: number;
  cattr?: number;
  recfmt?: number;
  cntlid?: number;
  subnqn: string;
  hostnqn: string;
  hostId?: Uint8Array;
}

export function connectCapsule(c: ConnectFields, digests: Digests = NO_DIGESTS): Uint8Array {
  const s = sqe({
    opcode: 0x7f,
    fctype: 0x01,
    cid: c.cid ?? 0,
    cdw10: (c.recfmt ?? 0) | (c.qid << 16),
    cdw11: c.sqsize | ((c.cattr ?? 0) << 16),
    cdw12: c.kato ?? 0,
    sglType: SGL_ICD,
    sglLength: 1024,
  });
  return capsuleCmd(s, connectData(c), digests);
}

export function connectData(c: Pick<ConnectFields, 'cntlid' | 'subnqn' | 'hostnqn' | 'hostId'>): Uint8Array {
  const data = new Uint8Array(1024);
  data.set(c.hostId ?? HOST_ID, 0);
  new DataView(data.buffer).setUint16(16, c.cntlid ?? 0xffff, true);
  data.set(new TextEncoder().encode(c.subnqn), 256);
  data.set(new TextEncoder().encode(c.hostnqn), 512);
  return data;
}

export const HOST_ID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
export const HOST_NQN = 'nqn.2014-08.org.nvmexpress:uuid:a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf';

/** A PDU as the controller sent it. */
export interface C2HPdu {
  readonly type: number;
  readonly flags: number;
  readonly hlen: number;
  readonly pdo: number;
  readonly plen: number;
  /** hlen bytes. */
  readonly header: Uint8Array;
  readonly data: Uint8Array;
  readonly headerDigestOk: boolean;
  readonly dataDigestOk: boolean;
}

export interface Cqe {
  readonly dw0: number;
  readonly dw1: number;
  readonly sqhd: number;
  readonly sqid: number;
  readonly cid: number;
  readonly status: number;
}

export function cqeOf(p: C2HPdu): Cqe {
  const v = new DataView(p.header.buffer, p.header.byteOffset + 8, 16);
  return { dw0: v.getUint32(0, true), dw1: v.getUint32(4, true), sqhd: v.getUint16(8, true), sqid: v.getUint16(10, true), cid: v.getUint16(12, true), status: v.getUint16(14, true) };
}

export function dataFieldsOf(p: C2HPdu): { cccid: number; ttag: number; offset: number; length: number } {
  const v = new DataView(p.header.buffer, p.header.byteOffset, p.header.length);
  return { cccid: v.getUint16(8, true), ttag: v.getUint16(10, true), offset: v.getUint32(12, true), length: v.getUint32(16, true) };
}

export function termFieldsOf(p: C2HPdu): { fes: number; fei: number } {
  const v = new DataView(p.header.buffer, p.header.byteOffset, p.header.length);
  return { fes: v.getUint16(8, true), fei: v.getUint32(10, true) };
}

/** Splits a controller's byte stream into PDUs. Throws on arithmetic a correct controller never sends. */
export class C2HDecoder {
  private buffer = Buffer.alloc(0);

  push(chunk: Uint8Array): C2HPdu[] {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const out: C2HPdu[] = [];
    while (this.buffer.length >= 8) {
      const plen = this.buffer.readUInt32LE(4);
      if (plen < 8) throw new Error(`controller sent PLEN ${plen}`);
      if (this.buffer.length < plen) break;
      const bytes = this.buffer.subarray(0, plen);
      this.buffer = this.buffer.subarray(plen);
      out.push(decode(Uint8Array.from(bytes)));
    }
    return out;
  }

  get pending(): number {
    return this.buffer.length;
  }
}

function decode(b: Uint8Array): C2HPdu {
  const type = b[0]!;
  const flags = b[1]!;
  const hlen = b[2]!;
  const pdo = b[3]!;
  const plen = new DataView(b.buffer, b.byteOffset).getUint32(4, true);
  const header = b.subarray(0, hlen);
  let headerDigestOk = true;
  let dataDigestOk = true;
  let data: Uint8Array = new Uint8Array(0);
  const digestFlags = type === T.ICResp || type === T.C2HTermReq ? 0 : flags;
  if (digestFlags & F.HDGST) headerDigestOk = crc32c(header) === new DataView(b.buffer, b.byteOffset).getUint32(hlen, true);
  if (type === T.C2HTermReq) {
    data = b.subarray(hlen, plen);
  } else if (pdo > 0) {
    const end = plen - (digestFlags & F.DDGST ? 4 : 0);
    data = b.subarray(pdo, end);
    if (digestFlags & F.DDGST) dataDigestOk = crc32c(data) === new DataView(b.buffer, b.byteOffset).getUint32(end, true);
  }
  return { type, flags, hlen, pdo, plen, header, data, headerDigestOk, dataDigestOk };
}
