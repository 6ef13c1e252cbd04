/**
 * NVMe/TCP PDU vocabulary (NVM Express TCP Transport Specification 1.0): types, flags, fixed header
 * lengths, field offsets and fatal error statuses. Every PDU starts with an 8-byte common header:
 * type, flags, HLEN, PDO, PLEN (little endian).
 */

export const PduType = {
  ICReq: 0x00,
  ICResp: 0x01,
  H2CTermReq: 0x02,
  C2HTermReq: 0x03,
  CapsuleCmd: 0x04,
  CapsuleResp: 0x05,
  H2CData: 0x06,
  C2HData: 0x07,
  R2T: 0x09,
} as const;
export type PduType = (typeof PduType)[keyof typeof PduType];

export const PduFlag = {
  /** A header digest follows the PDU header. */
  HDGSTF: 0x01,
  /** A data digest follows the PDU data. */
  DDGSTF: 0x02,
  /** H2CData/C2HData: the last PDU of a transfer. */
  LAST_PDU: 0x04,
  /** C2HData: the command completed successfully; no CapsuleResp follows. */
  SUCCESS: 0x08,
} as const;

/** Fixed header lengths (HLEN) per PDU type. */
export const HeaderLength = {
  IC: 128,
  TermReq: 24,
  CapsuleCmd: 72,
  CapsuleResp: 24,
  Data: 24,
  R2T: 24,
} as const;

export const COMMON_HEADER_LENGTH = 8;
export const DIGEST_LENGTH = 4;

/** Common header field offsets: FEI values of "Invalid PDU Header Field" point at these. */
export const CommonField = { type: 0, flags: 1, hlen: 2, pdo: 3, plen: 4 } as const;

/** ICReq / ICResp PDU-specific header offsets. */
export const ICField = { pfv: 8, hpda: 10, dgst: 11, maxr2t: 12, cpda: 10, maxh2cdata: 12 } as const;

/** H2CData / C2HData / R2T header offsets. */
export const DataField = { cccid: 8, ttag: 10, datao: 12, datal: 16 } as const;

/** C2HTermReq / H2CTermReq header offsets. */
export const TermField = { fes: 8, fei: 10 } as const;

/** ICReq DGST bits. */
export const DigestOption = { header: 0x01, data: 0x02 } as const;

/** Fatal error statuses carried by a termination request. */
export const FatalErrorStatus = {
  InvalidHeaderField: 0x01,
  PduSequenceError: 0x02,
  HeaderDigestError: 0x03,
  DataTransferOutOfRange: 0x04,
  DataTransferLimitExceeded: 0x05,
  UnsupportedParameter: 0x06,
} as const;
export type FatalErrorStatus = (typeof FatalErrorStatus)[keyof typeof FatalErrorStatus];

/** A termination request carries at most this much of the offending PDU's header. */
export const TERM_REQ_MAX_DATA = 128;
/** H2CTermReq PLEN outside [24, 152] closes the connection without a word (spec 7.4.7). */
export const TERM_REQ_MAX_PLEN = HeaderLength.TermReq + TERM_REQ_MAX_DATA;

/** The only PDU format version defined. */
export const PFV_1_0 = 0;

/** The SGL descriptor types a capsule may carry (byte 15 of the descriptor: type << 4 | subtype). */
export const SglType = {
  /** Data Block, subtype Offset: the data is in the capsule, at this offset. */
  InCapsule: 0x01,
  /** Transport Data Block, transport-specific subtype: the data moves in R2T/H2CData or C2HData PDUs. */
  Transport: 0x5a,
} as const;

export function pduTypeName(type: number): string {
  for (const [name, value] of Object.entries(PduType)) if (value === type) return name;
  return `0x${type.toString(16).padStart(2, '0')}`;
}
