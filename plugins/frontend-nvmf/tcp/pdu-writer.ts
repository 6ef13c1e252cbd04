/**
 * Encoders for the PDUs a controller sends: ICResp, CapsuleResp, C2HData, R2T and C2HTermReq. Each
 * returns the header (with its digest and the padding up to PDO when digests or alignment call for
 * them); payloads travel as separate buffers so read data is never copied into a PDU.
 */
import { crc32c } from './crc32c.js';
import {
  DIGEST_LENGTH,
  DataField,
  HeaderLength,
  ICField,
  PduFlag,
  PduType,
  TERM_REQ_MAX_DATA,
  TermField,
} from './pdu.js';
import { encodeCqe, type Completion } from '../nvme/command.js';

export interface SendOptions {
  readonly headerDigest: boolean;
  readonly dataDigest: boolean;
  /** Host PDU data alignment in bytes: (HPDA + 1) * 4. */
  readonly dataAlignment: number;
}

function commonHeader(buf: Uint8Array, type: number, flags: number, hlen: number, pdo: number, plen: number): DataView {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  buf[0] = type;
  buf[1] = flags;
  buf[2] = hlen;
  buf[3] = pdo;
  view.setUint32(4, plen, true);
  return view;
}

function sealHeader(buf: Uint8Array, hlen: number, digest: boolean): void {
  if (digest) new DataView(buf.buffer, buf.byteOffset, buf.length).setUint32(hlen, crc32c(buf.subarray(0, hlen)), true);
}

export function encodeICResp(cpda: number, digests: number, maxH2CData: number): Uint8Array {
  const buf = new Uint8Array(HeaderLength.IC);
  const view = commonHeader(buf, PduType.ICResp, 0, HeaderLength.IC, 0, HeaderLength.IC);
  view.setUint16(ICField.pfv, 0, true);
  buf[ICField.cpda] = cpda;
  buf[ICField.dgst] = digests;
  view.setUint32(ICField.maxh2cdata, maxH2CData, true);
  return buf;
}

export function encodeCapsuleResp(c: Completion, sqhd: number, sqid: number, cid: number, headerDigest: boolean): Uint8Array {
  const hlen = HeaderLength.CapsuleResp;
  const plen = hlen + (headerDigest ? DIGEST_LENGTH : 0);
  const buf = new Uint8Array(plen);
  commonHeader(buf, PduType.CapsuleResp, headerDigest ? PduFlag.HDGSTF : 0, hlen, 0, plen);
  encodeCqe(buf, 8, c, sqhd, sqid, cid);
  sealHeader(buf, hlen, headerDigest);
  return buf;
}

/**
 * The C2HData header, digest and padding for `datal` bytes at `datao`. The caller sends the data and,
 * when data digests are on, encodeDigest(data) after it.
 */
export function encodeC2HDataHeader(cccid: number, datao: number, datal: number, flags: number, options: SendOptions): Uint8Array {
  const hlen = HeaderLength.Data;
  const headerEnd = hlen + (options.headerDigest ? DIGEST_LENGTH : 0);
  const pdo = Math.ceil(headerEnd / options.dataAlignment) * options.dataAlignment;
  const plen = pdo + datal + (options.dataDigest ? DIGEST_LENGTH : 0);
  const buf = new Uint8Array(pdo);
  const allFlags = flags | (options.headerDigest ? PduFlag.HDGSTF : 0) | (options.dataDigest ? PduFlag.DDGSTF : 0);
  const view = commonHeader(buf, PduType.C2HData, allFlags, hlen, pdo, plen);
  view.setUint16(DataField.cccid, cccid, true);
  view.setUint32(DataField.datao, datao, true);
  view.setUint32(DataField.datal, datal, true);
  sealHeader(buf, hlen, options.headerDigest);
  return buf;
}

export function encodeR2T(cccid: number, ttag: number, r2to: number, r2tl: number, headerDigest: boolean): Uint8Array {
  const hlen = HeaderLength.R2T;
  const plen = hlen + (headerDigest ? DIGEST_LENGTH : 0);
  const buf = new Uint8Array(plen);
  const view = commonHeader(buf, PduType.R2T, headerDigest ? PduFlag.HDGSTF : 0, hlen, 0, plen);
  view.setUint16(DataField.cccid, cccid, true);
  view.setUint16(DataField.ttag, ttag, true);
  view.setUint32(DataField.datao, r2to, true);
  view.setUint32(DataField.datal, r2tl, true);
  sealHeader(buf, hlen, headerDigest);
  return buf;
}

/** A C2HTermReq quoting (up to 128 bytes of) the offending PDU header. Never digested; PDO is 0 as for every PDU whose data is not transfer data. */
export function encodeC2HTermReq(fes: number, fei: number, offending: Uint8Array): Uint8Array {
  const quoted = offending.subarray(0, Math.min(offending.length, TERM_REQ_MAX_DATA));
  const hlen = HeaderLength.TermReq;
  const buf = new Uint8Array(hlen + quoted.length);
  const view = commonHeader(buf, PduType.C2HTermReq, 0, hlen, 0, buf.length);
  view.setUint16(TermField.fes, fes, true);
  view.setUint32(TermField.fei, fei, true);
  buf.set(quoted, hlen);
  return buf;
}

export function encodeDigest(parts: readonly Uint8Array[]): Uint8Array {
  let crc = 0;
  for (const part of parts) crc = crc32c(part, crc);
  const buf = new Uint8Array(DIGEST_LENGTH);
  new DataView(buf.buffer).setUint32(0, crc, true);
  return buf;
}


