/**
 * One client connection from accept to close: negotiation under a deadline, then transmission.
 * Whatever ends it (NBD_CMD_DISC, the client hanging up, a protocol violation, the server
 * stopping) is logged once with its reason, and the export is released only after every request
 * that was started has finished, so a volume is never closed under an I/O.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { adoptWithOnread } from '../../kernel/net/accepted-socket.js';
import { ReadArena } from '../../kernel/net/read-arena.js';
import type { ExportTable } from './export-table.js';
import { negotiate, type BlockSizes, type Negotiated } from './handshake.js';
import { InputEnded, InputQueue } from './input-queue.js';
import { ReplyWriter } from './reply-writer.js';
import { Transmission, type TransmissionLimits } from './transmission.js';

export interface ConnectionSettings extends TransmissionLimits {
  readonly handshakeTimeoutMs: number;
  readonly blockSizes: BlockSizes;
  readonly defaultExport: string | undefined;
}

type Phase = 'handshake' | 'transmission' | 'closing' | 'closed';
/** How a close is logged: 'info' for ordinary ends; otherwise the socket is reset, not drained. */
type Level = 'info' | 'warn' | 'error';

export class Connection {
  private phase: Phase = 'handshake';
  private readonly input: InputQueue;
  private readonly writer: ReplyWriter;
  private transmission: Transmission | undefined;
  private session: Negotiated | undefined;
  private stopping = false;
  private closeReason: string | undefined;
  readonly done: Promise<void>;

  private readonly socket: Socket;

  /** `accepted` comes paused (the server listens with pauseOnConnect): reading starts here. */
  constructor(
    accepted: Socket,
    private readonly exports: ExportTable,
    private readonly settings: ConnectionSettings,
    private readonly log: Logger,
  ) {
    // Requests are read with onread into a ReadArena (no allocation per read, no stream push);
    // write payloads stay views of it, as they were views of Node's chunks.
    const arena = new ReadArena();
    const adopted = adoptWithOnread(accepted, {
      buffer: () => arena.room(),
      callback: (bytes) => {
        this.input.push(arena.filled(bytes));
        return true;
      },
    });
    const socket = adopted ?? accepted;
    this.socket = socket;
    socket.setNoDelay(true);
    this.input = new InputQueue(socket, settings.maxPayload + 1024 * 1024);
    this.writer = new ReplyWriter(socket);
    if (adopted === undefined) {
      socket.on('data', (chunk: Buffer) => this.input.push(chunk));
      socket.resume();
    }
    socket.on('end', () => this.input.end());
    socket.on('close', () => this.input.end());
    socket.on('error', (err) => {
      this.closeReason ??= `socket error: ${err.message}`;
      this.input.end();
    });
    this.done = this.run();
  }

  /** The export this connection uses, once negotiated. */
  get exportName(): string | undefined {
    return this.session?.export.name;
  }

  /**
   * Server shutdown: no new requests are read; those in flight are answered, then the connection
   * is closed. A connection still negotiating is closed at once.
   */
  stop(): void {
    this.stopping = true;
    this.closeReason ??= 'server stopping';
    this.input.end();
  }

  private async run(): Promise<void> {
    let reason: string;
    let level: Level = 'info';
    let context: Record<string, unknown> = {};
    try {
      this.session = (await this.negotiate()) ?? undefined;
      if (!this.session) {
        reason = 'client aborted negotiation';
      } else {
        this.phase = 'transmission';
        this.log.info({ export: this.session.export.name, structured: this.session.structured, flags: this.session.flags }, 'client connected');
        this.transmission = new Transmission(this.session, this.input, this.writer, this.settings, this.log);
        await this.transmission.serve();
        reason = 'client disconnected (NBD_CMD_DISC)';
      }
    } catch (err) {
      if (err instanceof InputEnded) {
        const midMessage = err.buffered > 0;
        const silent = this.input.received === 0;
        reason =
          this.closeReason ??
          (midMessage
            ? `connection closed mid-message during ${this.phase}`
            : this.phase === 'handshake'
              ? silent
                ? 'connection closed before sending anything'
                : 'connection closed during handshake'
              : 'client hung up without NBD_CMD_DISC');
        // A connection that sent nothing and left is a port probe (a health check), not an attack.
        const broken = midMessage || this.closeReason !== undefined || (this.phase === 'handshake' && !silent);
        if (!this.stopping && broken) level = 'warn';
        context = { buffered: err.buffered, received: this.input.received };
      } else if (isFastblockError(err, ErrorCode.PROTOCOL)) {
        reason = err.message;
        level = 'warn';
        context = { ...err.context };
      } else {
        // Not the client's doing: a bug here or in the provider.
        reason = `internal error: ${err instanceof Error ? err.message : String(err)}`;
        level = 'error';
        context = { err };
      }
    }
    await this.close(reason, level, context);
  }

  private async negotiate(): Promise<Negotiated | null> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.closeReason = `handshake not finished within ${this.settings.handshakeTimeoutMs} ms`;
        this.input.end();
        reject(new InputEnded(this.input.length));
      }, this.settings.handshakeTimeoutMs);
    });
    deadline.catch(() => undefined);
    const negotiation = negotiate({
      socket: this.socket,
      input: this.input,
      exports: this.exports,
      blockSizes: this.settings.blockSizes,
      defaultExport: this.settings.defaultExport,
      stopping: () => this.stopping,
    });
    try {
      return await Promise.race([negotiation, deadline]);
    } catch (err) {
      // If the deadline won, the negotiation may still acquire an export: release it when it does.
      negotiation.then((late) => late && this.exports.release(late.export.name), () => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private async close(reason: string, level: Level, context: Record<string, unknown>): Promise<void> {
    this.phase = 'closing';
    const inFlight = this.transmission?.pending ?? 0;
    this.log[level]({ reason, inFlight, ...context }, 'connection closed');
    // Replies of requests started before the end still go out if the socket can carry them.
    if (this.transmission) await this.transmission.idle();
    this.writer.flush();
    if (level === 'info') this.socket.end();
    else this.socket.destroy();
    if (this.session) await this.exports.release(this.session.export.name);
    this.phase = 'closed';
  }
}
