/**
 * The transmission phase of one connection: requests are parsed as they arrive and started at
 * once, many in flight; each reply leaves when its own request finishes, so replies come back out
 * of order (the cookie pairs them), batched by the ReplyWriter.
 *
 * A request the protocol can still frame but that asks for something invalid (a range past the
 * end, an unknown command or flag) gets an error reply. A request that breaks the framing (bad
 * magic, a write payload larger than we accept) throws PROTOCOL: the stream cannot be resynchronised,
 * so the connection is closed.
 */
import type { Logger } from 'pino';
import type { BlockVolume, BlockWriteOptions } from '../../kernel/contracts/block.js';
import type { ByteBudget } from './byte-budget.js';
import { ErrorCode, FastblockError, assert } from '../../kernel/errors.js';
import { errnoOf } from './errno.js';
import type { Negotiated } from './handshake.js';
import type { InputQueue } from './input-queue.js';
import {
  BASE_ALLOCATION_ID,
  CMD_FLAG_DF,
  CMD_FLAG_FAST_ZERO,
  CMD_FLAG_FUA,
  CMD_FLAG_NO_HOLE,
  CMD_FLAG_REQ_ONE,
  Command,
  Errno,
  REQUEST_MAGIC,
  REQUEST_SIZE,
} from './protocol.js';
import {
  SIMPLE_READ_PREFIX,
  STRUCTURED_READ_PREFIX,
  blockStatusChunk,
  errorChunk,
  noneChunk,
  simpleReply,
  writeReadChunkHeader,
  writeSimpleHeader,
  type Cookie,
} from './replies.js';
import { ReplySlab } from './reply-slab.js';
import type { ReplyWriter } from './reply-writer.js';

export interface TransmissionLimits {
  /** Largest READ or WRITE payload accepted (also advertised as the maximum block size). */
  readonly maxPayload: number;
  /** Requests started and not yet replied, per connection; past it the socket is not read. */
  readonly maxInFlight: number;
  /** Payload bytes in flight over all connections of the server. */
  readonly budget: ByteBudget;
}

interface Request extends Cookie {
  readonly flags: number;
  readonly type: number;
  readonly offset: number;
  readonly length: number;
}

const DONE: Promise<void> = Promise.resolve();
const FUA: BlockWriteOptions = Object.freeze({ fua: true });
const NO_FUA: BlockWriteOptions = Object.freeze({ fua: false });

/** Source of zeroes for WRITE_ZEROES with NO_HOLE: referenced many times, never written. */
const ZEROES = Buffer.alloc(1024 * 1024);

const COMMAND_NAMES: Record<number, string> = {
  [Command.READ]: 'read',
  [Command.WRITE]: 'write',
  [Command.FLUSH]: 'flush',
  [Command.TRIM]: 'trim',
  [Command.CACHE]: 'cache',
  [Command.WRITE_ZEROES]: 'write_zeroes',
  [Command.BLOCK_STATUS]: 'block_status',
};

export class Transmission {
  private inFlight = 0;
  /** Payload bytes held by requests in flight (write data received, read replies allocated). */
  private inFlightBytes = 0;
  private readonly maxInFlightBytes: number;
  private wakeSlot: (() => void) | undefined;
  private wakeIdle: (() => void) | undefined;
  private readonly volume: BlockVolume;
  private readonly readOnly: boolean;
  private readonly slab = new ReplySlab();

  constructor(
    private readonly session: Negotiated,
    private readonly input: InputQueue,
    private readonly writer: ReplyWriter,
    private readonly limits: TransmissionLimits,
    private readonly log: Logger,
  ) {
    this.volume = session.export.volume;
    this.readOnly = session.export.options.readOnly;
    // Bounds what one connection can pin in memory: a few maximum-size requests, whatever maxInFlight.
    this.maxInFlightBytes = 4 * limits.maxPayload;
  }

  get pending(): number {
    return this.inFlight;
  }

  /**
   * Reads and starts requests; resolves at NBD_CMD_DISC. Rejects with InputEnded when the stream
   * ends and with a PROTOCOL error on a framing violation.
   */
  async serve(): Promise<void> {
    const input = this.input;
    for (;;) {
      if (input.length < REQUEST_SIZE) await input.need(REQUEST_SIZE);
      const header = input.read(REQUEST_SIZE);
      const magic = header.readUInt32BE(0);
      if (magic !== REQUEST_MAGIC) {
        throw new FastblockError(ErrorCode.PROTOCOL, 'bad request magic', { magic: `0x${magic.toString(16)}` });
      }
      const request: Request = {
        flags: header.readUInt16BE(4),
        type: header.readUInt16BE(6),
        cookieHi: header.readUInt32BE(8),
        cookieLo: header.readUInt32BE(12),
        offset: header.readUInt32BE(16) * 0x1_0000_0000 + header.readUInt32BE(20),
        length: header.readUInt32BE(24),
      };
      if (request.type === Command.DISC) return;

      let payload: Buffer[] | undefined;
      if (request.type === Command.WRITE) {
        if (request.length > this.limits.maxPayload) {
          throw new FastblockError(ErrorCode.PROTOCOL, 'write payload larger than the advertised maximum', {
            length: request.length,
            max: this.limits.maxPayload,
          });
        }
        if (input.length < request.length) await input.need(request.length);
        payload = input.take(request.length);
      }
      this.start(request, payload);
      while (this.saturated) await this.slotFree();
      if (this.limits.budget.exhausted) await this.limits.budget.available();
      if (this.writer.congested) await this.writer.drained();
    }
  }

  /** Resolves when every started request has been answered (or failed to be). */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.wakeIdle;
      this.wakeIdle = () => {
        previous?.();
        resolve();
      };
    });
  }

  private slotFree(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeSlot = resolve;
    });
  }

  private get saturated(): boolean {
    return this.inFlight >= this.limits.maxInFlight || this.inFlightBytes >= this.maxInFlightBytes;
  }

  private start(request: Request, payload: Buffer[] | undefined): void {
    const bytes = request.type === Command.READ || request.type === Command.WRITE ? request.length : 0;
    this.inFlight++;
    this.inFlightBytes += bytes;
    this.limits.budget.take(bytes);
    this.execute(request, payload).then(
      () => this.finished(bytes),
      (err: unknown) => {
        // execute() turns every volume error into a reply; reaching here is a bug in this file
        // (or a reply that could not be queued).
        this.log.error({ err, cmd: COMMAND_NAMES[request.type] }, 'request handler failed');
        this.finished(bytes);
      },
    );
  }

  private finished(bytes: number): void {
    this.inFlight--;
    this.inFlightBytes -= bytes;
    this.limits.budget.give(bytes);
    assert(this.inFlight >= 0 && this.inFlightBytes >= 0, 'in-flight accounting went negative');
    // Nothing else can join the batch: send now rather than at the end of the loop turn (QD1 latency).
    if (this.inFlight === 0) this.writer.flush();
    if (this.wakeSlot && !this.saturated) {
      const wake = this.wakeSlot;
      this.wakeSlot = undefined;
      wake();
    }
    if (this.inFlight === 0 && this.wakeIdle) {
      const wake = this.wakeIdle;
      this.wakeIdle = undefined;
      wake();
    }
  }

  /**
   * Starts the volume call and returns a promise that settles once the reply is queued. Plain
   * promise chains, not async functions: a suspended async frame per request was a visible share
   * of the gateway's garbage at high IOPS.
   */
  private execute(request: Request, payload: Buffer[] | undefined): Promise<void> {
    const refusal = this.validate(request);
    if (refusal) {
      this.log.debug({ cmd: COMMAND_NAMES[request.type] ?? request.type, offset: request.offset, length: request.length, errno: refusal.errno }, refusal.message);
      this.replyError(request, refusal.errno, refusal.message);
      return DONE;
    }
    let call: Promise<void>;
    try {
      call = this.dispatch(request, payload);
    } catch (err) {
      call = Promise.reject(err);
    }
    return call.then(undefined, (err: unknown) => this.failed(request, err));
  }

  /** The volume call of a valid request; its promise resolves when the reply is queued. */
  private dispatch(request: Request, payload: Buffer[] | undefined): Promise<void> {
    // FUA goes to the volume with the write: a writeback export's WriteBackVolume then resolves only
    // once that record is written back, a writethrough volume once the write is durable.
    const fua = (request.flags & CMD_FLAG_FUA) !== 0;
    switch (request.type) {
      case Command.READ:
        return this.read(request);
      case Command.WRITE:
        if (request.length === 0) return this.replied(request);
        return this.volume.write(request.offset, payload!, fua ? FUA : NO_FUA).then(() => this.replied(request));
      case Command.FLUSH:
        return this.volume.flush().then(() => this.replied(request));
      case Command.TRIM: {
        const trimmed = request.length > 0 ? this.volume.discard(request.offset, request.length) : DONE;
        return (fua ? trimmed.then(() => this.volume.flush()) : trimmed).then(() => this.replied(request));
      }
      case Command.WRITE_ZEROES:
        if (request.length === 0) return this.replied(request);
        return this.writeZeroes(request, fua).then(() => this.replied(request));
      case Command.BLOCK_STATUS:
        // BlockVolume does not say what is allocated; status 0 ("data, not known to be zero") is
        // always a truthful answer.
        this.writer.send(blockStatusChunk(request, BASE_ALLOCATION_ID, request.length, 0));
        return DONE;
      default:
        // validate() refuses every other command.
        return this.replied(request);
    }
  }

  private replied(request: Request): Promise<void> {
    this.writer.send(simpleReply(request, 0));
    return DONE;
  }

  private failed(request: Request, err: unknown): void {
    const errno = errnoOf(err);
    const message = err instanceof Error ? err.message : String(err);
    this.log.warn({ err, cmd: COMMAND_NAMES[request.type], offset: request.offset, length: request.length, errno }, 'volume operation failed');
    this.replyError(request, errno, message);
  }

  /** The volume reads straight into the reply buffer, behind the reply header. */
  private read(request: Request): Promise<void> {
    const { structured } = this.session;
    if (request.length === 0) {
      this.writer.send(structured ? noneChunk(request) : simpleReply(request, 0));
      return DONE;
    }
    const prefix = structured ? STRUCTURED_READ_PREFIX : SIMPLE_READ_PREFIX;
    const reply = this.slab.take(prefix + request.length);
    const into = reply.subarray(prefix);
    return this.volume.read(request.offset, request.length, into).then((data) => {
      if (data.length < request.length) {
        // Sending fewer bytes than the header promises would desynchronise the client's stream.
        throw new FastblockError(ErrorCode.IO_ERROR, `volume returned ${data.length} of ${request.length} bytes`, { offset: request.offset });
      }
      if (structured) writeReadChunkHeader(reply, request, request.offset, request.length);
      else writeSimpleHeader(reply, request, 0);
      if (data.buffer === into.buffer && data.byteOffset === into.byteOffset) this.writer.send(reply);
      else this.writer.send(reply.subarray(0, prefix), data.subarray(0, request.length));
    });
  }

  private async writeZeroes(request: Request, fua: boolean): Promise<void> {
    if ((request.flags & CMD_FLAG_NO_HOLE) === 0) {
      await this.volume.writeZeroes(request.offset, request.length, { fua });
      return;
    }
    // The contract lets writeZeroes() release space; NO_HOLE forbids that, so write real zeroes.
    const parts: Buffer[] = [];
    for (let left = request.length; left > 0; left -= ZEROES.length) parts.push(ZEROES.subarray(0, Math.min(left, ZEROES.length)));
    await this.volume.write(request.offset, parts, { fua });
  }

  private validate(request: Request): { errno: Errno; message: string } | undefined {
    const { type, flags, offset, length } = request;
    const size = this.volume.size;
    let allowedFlags = CMD_FLAG_FUA;
    switch (type) {
      case Command.READ:
        if (this.session.structured) allowedFlags |= CMD_FLAG_DF;
        if (length > this.limits.maxPayload) return { errno: Errno.EINVAL, message: `read of ${length} bytes exceeds the maximum ${this.limits.maxPayload}` };
        break;
      case Command.WRITE:
      case Command.TRIM:
        break;
      case Command.WRITE_ZEROES:
        allowedFlags |= CMD_FLAG_NO_HOLE | CMD_FLAG_FAST_ZERO;
        break;
      case Command.FLUSH:
        if (offset !== 0 || length !== 0) return { errno: Errno.EINVAL, message: 'flush with a nonzero offset or length' };
        break;
      case Command.BLOCK_STATUS:
        if (!this.session.blockStatus) return { errno: Errno.EINVAL, message: 'block status without a negotiated metadata context' };
        if (length === 0) return { errno: Errno.EINVAL, message: 'block status of an empty range' };
        allowedFlags |= CMD_FLAG_REQ_ONE;
        break;
      default:
        return { errno: Errno.EINVAL, message: `unsupported command ${type}` };
    }
    if ((flags & ~allowedFlags) !== 0) return { errno: Errno.EINVAL, message: `flags 0x${flags.toString(16)} not valid for command ${type}` };
    const writes = type === Command.WRITE || type === Command.TRIM || type === Command.WRITE_ZEROES;
    if (writes && this.readOnly) return { errno: Errno.EPERM, message: 'export is read-only' };
    if (offset + length > size) {
      return { errno: type === Command.WRITE ? Errno.ENOSPC : Errno.EINVAL, message: `range [${offset}, +${length}) beyond the export size ${size}` };
    }
    // NO_HOLE means writing real zeroes (see writeZeroes()), which is not fast: say so at once, as
    // FAST_ZERO asks, so the client (qemu-img convert) can choose to write the zeroes itself.
    if ((flags & CMD_FLAG_FAST_ZERO) !== 0 && (flags & CMD_FLAG_NO_HOLE) !== 0) {
      return { errno: Errno.ENOTSUP, message: 'no fast zeroing without punching holes' };
    }
    return undefined;
  }

  private replyError(request: Request, errno: Errno, message: string): void {
    this.writer.send(this.session.structured ? errorChunk(request, errno, message) : simpleReply(request, errno));
  }
}
