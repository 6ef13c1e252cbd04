/**
 * Validation of a received common header, field by field in the order the NVMe/TCP specification
 * wants errors reported (the lowest incorrect field first): PDU type, flags, HLEN, PDO, PLEN.
 * A failure names the fatal error status and the byte offset (FEI) the C2HTermReq will carry.
 */
import {
  CommonField,
  DIGEST_LENGTH,
  FatalErrorStatus,
  HeaderLength,
  PduFlag,
  PduType,
  TERM_REQ_MAX_PLEN,
} from './pdu.js';

export interface ReceiveLimits {
  /** ICReq/ICResp done: digests below are in force. */
  readonly established: boolean;
  readonly headerDigest: boolean;
  readonly dataDigest: boolean;
  /** PDO alignment the host must honour: (CPDA + 1) * 4. */
  readonly dataAlignment: number;
  /** Largest in-capsule data a CapsuleCmd may carry. */
  readonly maxInCapsuleData: number;
  /** MAXH2CDATA from our ICResp. */
  readonly maxH2CData: number;
}

/** Where a PDU's parts lie, once its common header passed validation. */
export interface PduLayout {
  readonly type: PduType;
  readonly flags: number;
  readonly hlen: number;
  readonly pdo: number;
  readonly plen: number;
  readonly headerDigest: boolean;
  readonly dataDigest: boolean;
  /** Bytes of data (without padding and digest); 0 when the PDU carries none. */
  readonly dataLength: number;
}

export type HeaderVerdict =
  | { readonly kind: 'ok'; readonly layout: PduLayout }
  /** Answer with a C2HTermReq, then close. */
  | { readonly kind: 'fatal'; readonly fes: FatalErrorStatus; readonly fei: number }
  /** Close without a word (a termination request from the host, or one too malformed to answer). */
  | { readonly kind: 'close'; readonly reason: string };

const fatal = (fes: FatalErrorStatus, fei: number): HeaderVerdict => ({ kind: 'fatal', fes, fei });
const invalidField = (fei: number): HeaderVerdict => fatal(FatalErrorStatus.InvalidHeaderField, fei);

const EXPECTED_HLEN: Readonly<Record<number, number>> = {
  [PduType.ICReq]: HeaderLength.IC,
  [PduType.H2CTermReq]: HeaderLength.TermReq,
  [PduType.CapsuleCmd]: HeaderLength.CapsuleCmd,
  [PduType.H2CData]: HeaderLength.Data,
};

const VALID_FLAGS: Readonly<Record<number, number>> = {
  [PduType.ICReq]: 0,
  [PduType.H2CTermReq]: 0,
  [PduType.CapsuleCmd]: PduFlag.HDGSTF | PduFlag.DDGSTF,
  [PduType.H2CData]: PduFlag.HDGSTF | PduFlag.DDGSTF | PduFlag.LAST_PDU,
};

/** `ch` holds at least the 8-byte common header. */
export function validateCommonHeader(ch: Uint8Array, limits: ReceiveLimits): HeaderVerdict {
  const type = ch[CommonField.type]!;
  const flags = ch[CommonField.flags]!;
  const hlen = ch[CommonField.hlen]!;
  const pdo = ch[CommonField.pdo]!;
  const plen = (ch[4]! | (ch[5]! << 8) | (ch[6]! << 16) | (ch[7]! << 24)) >>> 0;

  // PDU type: only host-to-controller types, and ICReq exactly once, first.
  if (EXPECTED_HLEN[type] === undefined) return invalidField(CommonField.type);
  if (type === PduType.H2CTermReq) {
    // A termination request ends the connection; one with a bad length is not even answered.
    return { kind: 'close', reason: plen < HeaderLength.TermReq || plen > TERM_REQ_MAX_PLEN ? 'malformed H2CTermReq' : 'H2CTermReq' };
  }
  if ((type === PduType.ICReq) === limits.established) return fatal(FatalErrorStatus.PduSequenceError, CommonField.type);

  // Flags: nothing outside the type's set, and a digest flag exactly when that digest was negotiated.
  const valid = VALID_FLAGS[type]!;
  if ((flags & ~valid) !== 0) return invalidField(CommonField.flags);
  const hdgst = (flags & PduFlag.HDGSTF) !== 0;
  const ddgst = (flags & PduFlag.DDGSTF) !== 0;
  if (type !== PduType.ICReq) {
    if (hdgst !== limits.headerDigest) return invalidField(CommonField.flags);
    if (ddgst && !limits.dataDigest) return invalidField(CommonField.flags);
  }

  if (hlen !== EXPECTED_HLEN[type]) return invalidField(CommonField.hlen);

  const fullHeader = hlen + (hdgst ? DIGEST_LENGTH : 0);
  const carriesData = plen > fullHeader;
  if (type === PduType.ICReq) {
    if (pdo !== 0) return invalidField(CommonField.pdo);
    if (plen !== HeaderLength.IC) return invalidField(CommonField.plen);
    return ok(type, flags, hlen, pdo, plen, false, false, 0);
  }
  if (carriesData || pdo !== 0) {
    if (pdo < fullHeader || pdo > plen || pdo % limits.dataAlignment !== 0) return invalidField(CommonField.pdo);
  }

  if (plen < fullHeader) return invalidField(CommonField.plen);
  if (!carriesData) {
    // The data digest flag says data follows: a header-only PDU may not set it, and H2CData must carry data.
    if (ddgst || type === PduType.H2CData) return invalidField(CommonField.plen);
    return ok(type, flags, hlen, pdo, plen, hdgst, false, 0);
  }
  // A capsule with data but no data digest while data digests are in force.
  if (limits.dataDigest && !ddgst) return invalidField(CommonField.flags);
  const dataLength = plen - pdo - (ddgst ? DIGEST_LENGTH : 0);
  if (dataLength <= 0) return invalidField(CommonField.plen);
  const limit = type === PduType.CapsuleCmd ? limits.maxInCapsuleData : limits.maxH2CData;
  if (dataLength > limit) return fatal(FatalErrorStatus.DataTransferLimitExceeded, 0);
  return ok(type, flags, hlen, pdo, plen, hdgst, ddgst, dataLength);
}

function ok(type: number, flags: number, hlen: number, pdo: number, plen: number, headerDigest: boolean, dataDigest: boolean, dataLength: number): HeaderVerdict {
  return { kind: 'ok', layout: { type: type as PduType, flags, hlen, pdo, plen, headerDigest, dataDigest, dataLength } };
}
