/**
 * What a command handler sees of a command in flight, and what it answers. The transport decides how
 * data moves (in the capsule, solicited by R2T, returned in C2HData); handlers only ask for it.
 */
import type { Completion, SubmissionEntry } from '../nvme/command.js';
import { SUCCESS } from '../nvme/status.js';

export interface CommandContext {
  readonly sqe: SubmissionEntry;
  /** The SGL length: bytes the host moves with this command, in the command's direction. */
  readonly transferLength: number;
  /**
   * Host-to-controller data. In-capsule data is already here; otherwise the first call sends the R2T
   * and resolves when every H2CData PDU arrived. Handlers call it only after validating the command,
   * so a bad command never solicits data. Rejects with an NvmeStatusError on a data digest error.
   */
  receive(): Promise<readonly Uint8Array[]>;
}

export interface CommandResult extends Completion {
  /** Controller-to-host data, at most transferLength bytes of it are sent. */
  readonly data?: Uint8Array;
}

export function ok(data?: Uint8Array, dw0 = 0): CommandResult {
  return data ? { status: SUCCESS, dw0, dw1: 0, data } : { status: SUCCESS, dw0, dw1: 0 };
}
