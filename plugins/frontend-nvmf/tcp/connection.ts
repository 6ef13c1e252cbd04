/**
 * One NVMe/TCP connection, from the controller's side: the ICReq/ICResp exchange, then a stream of
 * PDUs carrying one queue's commands. Receives bytes, validates every PDU header in the spec's order,
 * moves command data (in-capsule, R2T + H2CData, C2HData) and answers each command with a
 * CapsuleResp (or a C2HData with SUCCESS when the host disabled SQ flow control). A PDU that breaks
 * the protocol is answered with a C2HTermReq and the connection closes; a command that is merely
 * wrong gets an error status and the connection carries on.
 *
 * Commands run concurrently and complete in whatever order the volume finishes them.
 */
import type { Logger } from 'pino';
import { ByteQueue } from './byte-queue.js';
import { crc32c, crc32cOf } from './crc32c.js';
import { validateCommonHeader, type PduLayout, type ReceiveLimits } from './pdu-header.js';
import { encodeC2HDataHeader, encodeC2HTermReq, encodeCapsuleResp, encodeDigest, encodeICResp, encodeR2T, type SendOptions } from './pdu-writer.js';
import {
  COMMON_HEADER_LENGTH,
  DIGEST_LENGTH,
  DataField,
  DigestOption,
  FatalErrorStatus,
  ICField,
  PFV_1_0,
  PduFlag,
  PduType,
  SglType,
} from './pdu.js';
import type { CommandContext, CommandResult } from '../controller/command-context.js';
import type { ControllerLimits } from '../controller/limits.js';
import { Queue, type QueueDirectory } from '../controller/queue.js';
import { SQE_LENGTH, SubmissionEntry } from '../nvme/command.js';
import { DataDirection, IoOpcode, dataDirection } from '../nvme/opcodes.js';
import { GenericStatus, NvmeStatusError, SUCCESS, generic, type Status } from '../nvme/status.js';

/** Where the connection's PDUs go: a socket, or a test's capture. */
export interface Wire {
  send(parts: readonly Uint8Array[]): void;
  /** Flush what was sent, then close. */
  close(): void;
}

/** I/O commands whose CDW10-11 hold a starting LBA (reported in the error log). */
const LBA_OPCODES = new Set<number>([IoOpcode.Read, IoOpcode.Write, IoOpcode.WriteZeroes]);

/** Our CPDA: host data may start at any dword (PDO a multiple of 4). */
const CPDA = 0;
const HPDA_MAX = 31;

interface H2CTransfer {
  readonly cid: number;
  readonly length: number;
  received: number;
  digestError: boolean;
  readonly parts: Uint8Array[];
  resolve(parts: readonly Uint8Array[]): void;
  reject(err: Error): void;
}

type State = 'initializing' | 'established' | 'closed';

export class NvmeTcpConnection {
  private readonly rx = new ByteQueue();
  private state: State = 'initializing';
  private headerDigest = false;
  private dataDigest = false;
  readonly queue: Queue;
  private readonly inflight = new Set<number>();
  private readonly transfers = new Map<number, H2CTransfer>();
  private nextTtag = 0;
  private closedBecause: string | undefined;
  /** What received PDUs are checked against; replaced once the ICReq settled digests. */
  private receiveLimits: ReceiveLimits;
  private sendOptions: SendOptions = { headerDigest: false, dataDigest: false, dataAlignment: 4 };

  constructor(
    private readonly wire: Wire,
    directory: QueueDirectory,
    private readonly limits: ControllerLimits,
    private readonly logger: Logger,
  ) {
    this.queue = new Queue(directory, (reason) => this.shutdown(reason));
    this.receiveLimits = this.limitsFor(false);
  }

  private limitsFor(established: boolean): ReceiveLimits {
    return {
      established,
      headerDigest: this.headerDigest,
      dataDigest: this.dataDigest,
      dataAlignment: (CPDA + 1) * 4,
      maxInCapsuleData: this.limits.inCapsuleDataSize,
      maxH2CData: this.limits.maxH2CData,
    };
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Commands received and not yet answered. */
  get commandsInFlight(): number {
    return this.inflight.size;
  }

  /** Received bytes not yet making up a whole PDU. */
  get bytesBuffered(): number {
    return this.rx.length;
  }

  /** Why the connection closed, once it did. */
  get closeReason(): string | undefined {
    return this.closedBecause;
  }

  /** R2Ts sent whose data has not all arrived. */
  get transfersPending(): number {
    return this.transfers.size;
  }

  /** Bytes from the host. */
  receive(chunk: Uint8Array): void {
    if (this.state === 'closed') return;
    this.rx.push(chunk);
    this.drain();
  }

  /** The transport closed underneath us (peer FIN, reset, or our own close). */
  closed(): void {
    if (this.state !== 'closed') {
      this.state = 'closed';
      this.closedBecause = 'transport closed';
    }
    this.rx.clear();
    for (const transfer of this.transfers.values()) transfer.reject(new NvmeStatusError(generic(GenericStatus.AbortRequested), 'connection closed'));
    this.transfers.clear();
    this.queue.closed();
  }

  private shutdown(reason: string): void {
    if (this.state === 'closed') return;
    this.logger.debug({ reason, qid: this.queue.qid }, 'closing NVMe/TCP connection');
    this.state = 'closed';
    this.closedBecause = reason;
    this.wire.close();
  }

  private drain(): void {
    while (this.state !== 'closed' && this.rx.length >= COMMON_HEADER_LENGTH) {
      const verdict = validateCommonHeader(this.rx.peek(COMMON_HEADER_LENGTH), this.receiveLimits);
      if (verdict.kind === 'close') {
        this.logger.info({ reason: verdict.reason }, 'host terminated the connection');
        this.shutdown(verdict.reason);
        return;
      }
      if (verdict.kind === 'fatal') {
        this.terminate(verdict.fes, verdict.fei, this.rx.peek(Math.min(this.rx.length, this.rx.byteAt(2) || COMMON_HEADER_LENGTH)));
        return;
      }
      const layout = verdict.layout;
      if (this.rx.length < layout.plen) return;
      const headerLength = layout.hlen + (layout.headerDigest ? DIGEST_LENGTH : 0);
      const header = this.rx.peek(headerLength);
      if (layout.headerDigest) {
        const expected = readU32(header, layout.hlen);
        if (crc32c(header.subarray(0, layout.hlen)) !== expected) {
          this.terminate(FatalErrorStatus.HeaderDigestError, 0, header.subarray(0, layout.hlen));
          return;
        }
      }
      // Copy the header out: it outlives this PDU (the SQE is read while the command runs).
      const ownHeader = Uint8Array.from(header.subarray(0, layout.hlen));
      let data: Uint8Array[] = [];
      let dataDigestOk = true;
      if (layout.dataLength > 0) {
        this.rx.skip(layout.pdo);
        data = this.rx.take(layout.dataLength);
        if (layout.dataDigest) {
          const digest = readU32(this.rx.peek(DIGEST_LENGTH), 0);
          this.rx.skip(DIGEST_LENGTH);
          dataDigestOk = crc32cOf(data) === digest;
        }
      } else {
        this.rx.skip(layout.plen);
      }
      this.dispatch(layout, ownHeader, data, dataDigestOk);
    }
  }

  private dispatch(layout: PduLayout, header: Uint8Array, data: Uint8Array[], dataDigestOk: boolean): void {
    switch (layout.type) {
      case PduType.ICReq:
        return this.initialize(header);
      case PduType.CapsuleCmd:
        return this.capsule(header, data, dataDigestOk);
      case PduType.H2CData:
        return this.h2cData(layout, header, data, dataDigestOk);
    }
  }

  /** Answers with a C2HTermReq quoting the offending header, then closes. */
  private terminate(fes: number, fei: number, offending: Uint8Array): void {
    this.logger.warn({ fes, fei, header: Buffer.from(offending.subarray(0, 24)).toString('hex') }, 'bad PDU from host: sending C2HTermReq');
    this.wire.send([encodeC2HTermReq(fes, fei, offending)]);
    this.shutdown(`fatal transport error ${fes}`);
  }

  private initialize(header: Uint8Array): void {
    const view = new DataView(header.buffer, header.byteOffset, header.length);
    const pfv = view.getUint16(ICField.pfv, true);
    if (pfv !== PFV_1_0) return this.terminate(FatalErrorStatus.UnsupportedParameter, ICField.pfv, header);
    const hpda = header[ICField.hpda]!;
    if (hpda > HPDA_MAX) return this.terminate(FatalErrorStatus.UnsupportedParameter, ICField.hpda, header);
    const digests = header[ICField.dgst]! & (DigestOption.header | DigestOption.data);
    this.wire.send([encodeICResp(CPDA, digests, this.limits.maxH2CData)]);
    this.headerDigest = (digests & DigestOption.header) !== 0;
    this.dataDigest = (digests & DigestOption.data) !== 0;
    this.state = 'established';
    this.receiveLimits = this.limitsFor(true);
    this.sendOptions = { headerDigest: this.headerDigest, dataDigest: this.dataDigest, dataAlignment: (hpda + 1) * 4 };
  }

  private capsule(header: Uint8Array, inCapsule: Uint8Array[], dataDigestOk: boolean): void {
    const sqe = new SubmissionEntry(header.subarray(COMMON_HEADER_LENGTH, COMMON_HEADER_LENGTH + SQE_LENGTH));
    const cid = sqe.cid;
    if (this.inflight.has(cid)) {
      this.respond(cid, { status: generic(GenericStatus.CommandIdConflict), dw0: 0, dw1: 0 }, 0);
      return;
    }
    if (this.inflight.size >= this.queue.entries) {
      // The host broke flow control (more commands than queue entries): refuse, cheaply, rather than
      // let one connection hold an unbounded number of transfers.
      this.respond(cid, { status: generic(GenericStatus.CommandSequenceError), dw0: 0, dw1: 0 }, 0);
      return;
    }
    this.inflight.add(cid);
    if (!dataDigestOk) {
      this.finish(sqe, { status: generic(GenericStatus.TransientTransportError), dw0: 0, dw1: 0 }, 0);
      return;
    }
    const plan = this.planTransfer(sqe, inCapsule);
    if (typeof plan === 'number') {
      this.finish(sqe, { status: plan, dw0: 0, dw1: 0 }, 0);
      return;
    }
    const ctx: CommandContext = { sqe, transferLength: plan.length, receive: plan.receive };
    this.queue.execute(ctx).then(
      (r) => this.finish(sqe, r, plan.length),
      (err: unknown) => this.finish(sqe, this.failure(sqe, err), 0),
    );
  }

  /** How this command's data moves, from its direction and SGL; a status when the SGL is unusable. */
  private planTransfer(sqe: SubmissionEntry, inCapsule: Uint8Array[]): { length: number; receive: () => Promise<readonly Uint8Array[]> } | Status {
    const icdLength = inCapsule.reduce((n, part) => n + part.length, 0);
    if (!sqe.usesSgl) return generic(GenericStatus.InvalidField);
    const length = sqe.sglLength;
    const type = sqe.sglType;
    const direction = dataDirection(sqe.opcode, sqe.fctype);
    const none = (): Promise<readonly Uint8Array[]> => Promise.resolve([]);
    if (length === 0) return icdLength === 0 ? { length: 0, receive: none } : generic(GenericStatus.DataSglLengthInvalid);
    if (length > this.limits.maxTransferBytes) return generic(GenericStatus.DataSglLengthInvalid);
    if (type === SglType.InCapsule) {
      if (direction !== DataDirection.HostToController) return generic(GenericStatus.SglDescriptorTypeInvalid);
      const offset = Number(sqe.sglAddress);
      if (offset + length > icdLength) return generic(icdLength === 0 ? GenericStatus.DataSglLengthInvalid : GenericStatus.SglOffsetInvalid);
      const parts = slice(inCapsule, offset, length);
      return { length, receive: () => Promise.resolve(parts) };
    }
    if (type !== SglType.Transport || icdLength !== 0) return generic(GenericStatus.SglDescriptorTypeInvalid);
    if (direction === DataDirection.HostToController) {
      let solicited: Promise<readonly Uint8Array[]> | undefined;
      return { length, receive: () => (solicited ??= this.solicit(sqe.cid, length)) };
    }
    if (direction === DataDirection.ControllerToHost) return { length, receive: none };
    return generic(GenericStatus.InvalidField);
  }

  /** Sends an R2T for the whole transfer; resolves when the last H2CData PDU arrived. */
  private solicit(cid: number, length: number): Promise<readonly Uint8Array[]> {
    if (this.state === 'closed') return Promise.reject(new NvmeStatusError(generic(GenericStatus.AbortRequested), 'connection closed'));
    return new Promise((resolve, reject) => {
      let ttag = this.nextTtag;
      while (this.transfers.has(ttag)) ttag = (ttag + 1) & 0xffff;
      this.nextTtag = (ttag + 1) & 0xffff;
      this.transfers.set(ttag, { cid, length, received: 0, digestError: false, parts: [], resolve, reject });
      this.wire.send([encodeR2T(cid, ttag, 0, length, this.headerDigest)]);
    });
  }

  private h2cData(layout: PduLayout, header: Uint8Array, data: Uint8Array[], dataDigestOk: boolean): void {
    const view = new DataView(header.buffer, header.byteOffset, header.length);
    const cccid = view.getUint16(DataField.cccid, true);
    const ttag = view.getUint16(DataField.ttag, true);
    const datao = view.getUint32(DataField.datao, true);
    const datal = view.getUint32(DataField.datal, true);
    if (datal > this.limits.maxH2CData) return this.terminate(FatalErrorStatus.DataTransferLimitExceeded, 0, header);
    const transfer = this.transfers.get(ttag);
    if (!transfer) return this.terminate(FatalErrorStatus.InvalidHeaderField, DataField.ttag, header);
    if (transfer.cid !== cccid) return this.terminate(FatalErrorStatus.InvalidHeaderField, DataField.cccid, header);
    if (datal !== layout.dataLength) return this.terminate(FatalErrorStatus.InvalidHeaderField, DataField.datal, header);
    if (datao + datal > transfer.length) return this.terminate(FatalErrorStatus.DataTransferOutOfRange, 0, header);
    if (datao !== transfer.received) return this.terminate(FatalErrorStatus.PduSequenceError, 0, header);
    const last = (layout.flags & PduFlag.LAST_PDU) !== 0;
    if ((datao + datal === transfer.length) !== last) return this.terminate(FatalErrorStatus.PduSequenceError, 0, header);
    transfer.parts.push(...data);
    transfer.received += datal;
    if (!dataDigestOk) transfer.digestError = true;
    if (!last) return;
    this.transfers.delete(ttag);
    if (transfer.digestError) transfer.reject(new NvmeStatusError(generic(GenericStatus.TransientTransportError), 'data digest error'));
    else transfer.resolve(transfer.parts);
  }

  private failure(sqe: SubmissionEntry, err: unknown): CommandResult {
    if (err instanceof NvmeStatusError) {
      this.logger.debug({ opcode: sqe.opcode, cid: sqe.cid, status: err.status, why: err.message }, 'command failed');
      return { status: err.status, dw0: err.dw0, dw1: 0 };
    }
    this.logger.error({ err, opcode: sqe.opcode, cid: sqe.cid }, 'command handler failed unexpectedly');
    return { status: generic(GenericStatus.InternalError), dw0: 0, dw1: 0 };
  }

  private finish(sqe: SubmissionEntry, result: CommandResult, transferLength: number): void {
    const cid = sqe.cid;
    if (result.status !== SUCCESS) {
      const lba = this.queue.qid > 0 && LBA_OPCODES.has(sqe.opcode) ? sqe.cdw(11) * 0x100000000 + sqe.cdw(10) : 0;
      this.queue.controller?.recordError({ sqid: Math.max(this.queue.qid, 0), cid, status: result.status, lba, nsid: sqe.nsid });
    }
    this.inflight.delete(cid);
    this.respond(cid, result, transferLength);
  }

  private respond(cid: number, result: CommandResult, transferLength: number): void {
    if (this.state === 'closed') return;
    // The entry leaves the submission queue as it completes (what Linux nvmet reports as SQHD too).
    this.queue.consumeEntry();
    const data = result.status === SUCCESS && result.data && transferLength > 0 ? result.data.subarray(0, transferLength) : undefined;
    const cqeNeeded = !data || !this.queue.disableSqFlowControl;
    if (data) {
      const flags = PduFlag.LAST_PDU | (cqeNeeded ? 0 : PduFlag.SUCCESS);
      const parts: Uint8Array[] = [encodeC2HDataHeader(cid, 0, data.length, flags, this.sendOptions), data];
      if (this.dataDigest) parts.push(encodeDigest([data]));
      if (cqeNeeded) parts.push(encodeCapsuleResp(result, this.queue.sqhd, Math.max(this.queue.qid, 0), cid, this.headerDigest));
      this.wire.send(parts);
      return;
    }
    this.wire.send([encodeCapsuleResp(result, this.queue.sqhd, Math.max(this.queue.qid, 0), cid, this.headerDigest)]);
  }
}

function readU32(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0;
}

/** `length` bytes at `offset` of a scatter list, as subarrays. */
function slice(parts: readonly Uint8Array[], offset: number, length: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = offset;
  let left = length;
  for (const part of parts) {
    if (left === 0) break;
    if (skip >= part.length) {
      skip -= part.length;
      continue;
    }
    const take = Math.min(part.length - skip, left);
    out.push(part.subarray(skip, skip + take));
    left -= take;
    skip = 0;
  }
  return out;
}
