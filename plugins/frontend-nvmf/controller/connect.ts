/**
 * The Fabrics Connect command: its fields, and the "Connect Invalid Parameters" answer that points
 * the host at the offending field (CQE dword 0: IPO in bits 15:0, IATTR bit 16 = in the data).
 */
import type { SubmissionEntry } from '../nvme/command.js';
import { CommandSpecificStatus, NvmeStatusError, commandSpecific } from '../nvme/status.js';
import { readString } from '../nvme/structure.js';

export const CONNECT_DATA_LENGTH = 1024;
export const DYNAMIC_CNTLID = 0xffff;

/** Field offsets: in the SQE (CDW10 onwards) and in the 1024-byte Connect data. */
export const ConnectSqeField = { recfmt: 40, qid: 42, sqsize: 44, cattr: 46, kato: 48 } as const;
export const ConnectDataField = { hostId: 0, cntlid: 16, subnqn: 256, hostnqn: 512 } as const;

/** CATTR bit 2: the host disables SQ flow control (SQHD need not be reported). */
const CATTR_DISABLE_SQ_FLOW_CONTROL = 0x04;

export interface ConnectRequest {
  readonly recfmt: number;
  readonly qid: number;
  /** 0's based. */
  readonly sqsize: number;
  readonly disableSqFlowControl: boolean;
  readonly kato: number;
  readonly hostId: Uint8Array;
  readonly cntlid: number;
  readonly subnqn: string;
  readonly hostnqn: string;
}

export function parseConnect(sqe: SubmissionEntry, data: Uint8Array): ConnectRequest {
  const view = new DataView(data.buffer, data.byteOffset, data.length);
  return {
    recfmt: sqe.u16(ConnectSqeField.recfmt),
    qid: sqe.u16(ConnectSqeField.qid),
    sqsize: sqe.u16(ConnectSqeField.sqsize),
    disableSqFlowControl: (sqe.u8(ConnectSqeField.cattr) & CATTR_DISABLE_SQ_FLOW_CONTROL) !== 0,
    kato: sqe.u32(ConnectSqeField.kato),
    hostId: Uint8Array.from(data.subarray(ConnectDataField.hostId, ConnectDataField.hostId + 16)),
    cntlid: view.getUint16(ConnectDataField.cntlid, true),
    subnqn: readString(data, ConnectDataField.subnqn, 256),
    hostnqn: readString(data, ConnectDataField.hostnqn, 256),
  };
}

export function invalidSqeField(offset: number, why: string): NvmeStatusError {
  return new NvmeStatusError(commandSpecific(CommandSpecificStatus.ConnectInvalidParameters), why, offset);
}

export function invalidDataField(offset: number, why: string): NvmeStatusError {
  return new NvmeStatusError(commandSpecific(CommandSpecificStatus.ConnectInvalidParameters), why, (1 << 16) | offset);
}
