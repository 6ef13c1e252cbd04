/**
 * The accepting side. Each accepted socket must open with a HELLO naming the shard this
 * listener serves; then requests and one-way messages go to the handler, replies come back in
 * completion order (the request id pairs them).
 *
 * Backpressure: when replies queue beyond highWaterBytes, or maxInflightPerConnection requests
 * are being served, the socket is paused, so a peer that stops reading its replies stops being
 * served instead of growing our memory. Reading resumes once the queue is down to half the mark
 * (heard from each completed write, not only when it is empty), so that a peer that merely reads
 * in bursts keeps requests coming while the rest of the replies drain. A bad frame closes only its connection, with a log line.
 *
 * Received bytes are given back for reuse (Frame.release()) only where nobody can still view
 * them: the hello once decoded, and a request whose handler borrows its payload
 * (InboundHandler.borrowsPayload) once its reply is written, or once the handler's result settles
 * if the connection is gone by then, and a one-way message whose handler borrows it
 * (InboundHandler.borrowsMessage) once onMessage has returned.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type {
  InboundConnection,
  InboundHandler,
  NetAddress,
  OutboundReply,
  Payload,
  TransportListener,
} from '../../kernel/contracts/transport.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { FRAME_VERSION, FrameKind, type Frame } from '../../kernel/rpc/frame.js';
import { FrameDecoder } from '../../kernel/rpc/frame-decoder.js';
import type { ReceiveSlabPool } from '../../kernel/rpc/receive-slabs.js';
import { HelloCodec, HelloReplyCodec, encodeError } from '../../kernel/rpc/wire.js';
import { adoptWithOnread } from '../../kernel/net/accepted-socket.js';
import { FrameWriter } from './frame-writer.js';
import type { TcpOptions } from './tcp-options.js';

let nextConnectionId = 1;

class InboundTcpConnection implements InboundConnection {
  readonly id = nextConnectionId++;
  readonly remote: string;
  shard = -1;
  private readonly socket: Socket;
  private readonly decoder: FrameDecoder;
  private readonly writer: FrameWriter;
  private serving = 0;
  private paused = false;
  private closedReason: string | undefined;
  private readonly helloTimer: NodeJS.Timeout;

  constructor(
    accepted: Socket,
    private readonly listenerShard: number,
    private readonly daemon: string,
    private readonly handler: InboundHandler,
    private readonly options: TcpOptions,
    private readonly logger: Logger,
    slabs: ReceiveSlabPool,
    private readonly onGone: (connection: InboundTcpConnection) => void,
  ) {
    this.remote = `${accepted.remoteAddress}:${accepted.remotePort}`;
    const decoder = new FrameDecoder({ maxHeaderBytes: options.maxHeaderBytes, maxPayloadBytes: options.maxPayloadBytes }, slabs);
    this.decoder = decoder;
    // Requests are read into the decoder's receive slabs and parsed in place (no chunk per read,
    // no assembly copy).
    const socket = adoptWithOnread(accepted, { buffer: () => decoder.readBuffer(), callback: (bytes) => this.onRead(bytes) });
    if (socket === undefined) {
      accepted.on('data', (chunk: Buffer) => this.onData(chunk));
      accepted.resume();
    }
    this.socket = socket ?? accepted;
    this.socket.setNoDelay(true);
    this.writer = new FrameWriter(this.socket, options.checksumPayload, () => {
      if (this.paused) this.maybeResume();
    });
    this.socket.on('drain', () => this.maybeResume());
    this.socket.on('error', (err) => this.close(`socket error: ${err.message}`));
    this.socket.on('close', () => this.gone(this.closedReason ?? 'closed by peer'));
    // A peer that connects and never says hello holds a socket for nothing.
    this.helloTimer = setTimeout(() => {
      this.logger.warn({ remote: this.remote, timeoutMs: options.connectTimeoutMs }, 'closing connection: no hello in time');
      this.close(`no hello within ${options.connectTimeoutMs} ms`);
    }, options.connectTimeoutMs);
  }

  get bufferedBytes(): number {
    return this.writer.bufferedBytes;
  }

  get receiveBufferedBytes(): number {
    return this.decoder.pendingBytes;
  }

  send(method: number, header: Uint8Array, payload?: Payload): void {
    if (this.shard < 0 || this.writer.bufferedBytes > this.options.maxBufferedBytes) return;
    this.writer.write(FrameKind.MESSAGE, method, 0, header, payload);
  }

  close(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    this.socket.destroy();
  }

  private readonly deliver = (frame: Frame): boolean => {
    this.onFrame(frame);
    // Paused: leave the rest of what was read in the decoder until replies drain.
    return !this.paused && this.closedReason === undefined;
  };

  private onData(chunk: Buffer): void {
    if (this.closedReason !== undefined) return;
    this.guard(() => this.decoder.push(chunk, this.deliver));
  }

  /** `bytes` arrived in the buffer the decoder picked; false stops reading (the connection is closing). */
  private onRead(bytes: number): boolean {
    if (this.closedReason !== undefined) return false;
    this.guard(() => this.decoder.received(bytes, this.deliver));
    return this.closedReason === undefined;
  }

  private guard(work: () => void): void {
    try {
      work();
    } catch (err) {
      const reason = (err as Error).message;
      this.logger.warn({ remote: this.remote, shard: this.shard, reason }, 'closing connection: bad frame');
      this.close(`bad frame: ${reason}`);
    }
  }

  private onFrame(frame: Frame): void {
    // After a refused hello the rest of the chunk is ignored; the refusal still gets flushed.
    if (this.closedReason !== undefined) return;
    if (this.shard < 0) return this.onHello(frame);
    switch (frame.kind) {
      case FrameKind.REQUEST:
        return this.serve(frame);
      case FrameKind.MESSAGE:
        return this.deliverMessage(frame);
      default:
        throw new FastblockError(ErrorCode.PROTOCOL, `client sent a frame of kind ${frame.kind}, which only servers send`, { kind: frame.kind });
    }
  }

  /** A one-way message whose handler throws (a header that does not decode, say) is dropped alone. */
  private deliverMessage(frame: Frame): void {
    try {
      this.handler.onMessage?.(this, frame);
    } catch (err) {
      this.logger.warn({ remote: this.remote, method: frame.method, reason: (err as Error).message }, 'one-way message dropped: its handler failed');
    }
    if (this.handler.borrowsMessage?.(frame.method) === true) frame.release();
  }

  private onHello(frame: Frame): void {
    if (frame.kind !== FrameKind.HELLO) throw new FastblockError(ErrorCode.PROTOCOL, `first frame is of kind ${frame.kind}, not HELLO`, { kind: frame.kind });
    const hello = HelloCodec.decode(frame.header);
    frame.release();
    let refusal: FastblockError | undefined;
    if (hello.protocol !== FRAME_VERSION) {
      refusal = new FastblockError(ErrorCode.PROTOCOL, `client speaks frame protocol ${hello.protocol}, this server ${FRAME_VERSION}`, { protocol: hello.protocol });
    } else if (hello.targetShard !== this.listenerShard) {
      refusal = new FastblockError(ErrorCode.INVALID_ARGUMENT, `this port serves shard ${this.listenerShard}, not shard ${hello.targetShard}`, {
        shard: this.listenerShard,
        asked: hello.targetShard,
      });
    }
    if (refusal) {
      this.logger.warn({ remote: this.remote, source: hello.source, reason: refusal.message }, 'refusing hello');
      this.writer.write(FrameKind.ERROR, 0, 0, encodeError(refusal));
      this.closedReason = `hello refused: ${refusal.message}`;
      this.writer.end();
      return;
    }
    clearTimeout(this.helloTimer);
    this.shard = hello.targetShard;
    this.writer.write(FrameKind.HELLO_OK, 0, 0, HelloReplyCodec.encode({ shard: this.shard, daemon: this.daemon }));
    this.logger.debug({ remote: this.remote, source: hello.source, shard: this.shard, sourceShard: hello.sourceShard }, 'connection accepted');
  }

  private serve(frame: Frame): void {
    const { requestId, method } = frame;
    // Borrowed: the request's bytes go back with its reply. Otherwise the handler may keep them.
    const borrowed = this.handler.borrowsPayload?.(method) === true ? frame : undefined;
    this.serving++;
    let outcome: Promise<OutboundReply> | OutboundReply;
    try {
      // A Frame is an InboundMessage (method, header, payload): no copy of the envelope.
      outcome = this.handler.onRequest(this, frame);
    } catch (err) {
      this.finish(requestId, method, undefined, err, borrowed);
      return;
    }
    if (outcome instanceof Promise) {
      outcome.then(
        (reply) => this.finish(requestId, method, reply, undefined, borrowed),
        (err: unknown) => this.finish(requestId, method, undefined, err, borrowed),
      );
      this.maybePause();
    } else {
      this.finish(requestId, method, outcome, undefined, borrowed);
    }
  }

  private finish(requestId: number, method: number, reply: OutboundReply | undefined, err: unknown, borrowed: Frame | undefined): void {
    this.serving--;
    if (this.closedReason !== undefined) {
      // No reply will be sent, and the handler is done with the request.
      borrowed?.release();
      return;
    }
    if (reply) this.writer.write(FrameKind.REPLY, method, requestId, reply.header, reply.payload, borrowed);
    else this.writer.write(FrameKind.ERROR, method, requestId, encodeError(err), undefined, borrowed);
    if (this.writer.bufferedBytes > this.options.highWaterBytes) this.maybePause();
    // Resuming from inside a synchronous handler's return would recurse into the decoder.
    else if (this.paused) queueMicrotask(() => this.maybeResume());
  }

  private maybePause(): void {
    if (this.paused) return;
    if (this.serving < this.options.maxInflightPerConnection && this.writer.bufferedBytes <= this.options.highWaterBytes) return;
    this.paused = true;
    this.socket.pause();
    this.logger.debug({ remote: this.remote, serving: this.serving, queued: this.writer.bufferedBytes }, 'backpressure: stopped reading');
  }

  private maybeResume(): void {
    if (!this.paused || this.closedReason !== undefined) return;
    if (this.serving >= this.options.maxInflightPerConnection || this.writer.bufferedBytes > this.options.highWaterBytes / 2) return;
    this.paused = false;
    this.socket.resume();
    // Frames read before the pause come first; they may pause us again.
    this.guard(() => this.decoder.pump(this.deliver));
  }

  private gone(reason: string): void {
    clearTimeout(this.helloTimer);
    this.closedReason ??= reason;
    this.onGone(this);
    if (this.shard >= 0) this.handler.onConnectionClosed?.(this, reason);
  }
}

export class TcpListener implements TransportListener {
  private readonly connections = new Set<InboundTcpConnection>();
  address: NetAddress;

  private constructor(
    private readonly server: Server,
    private readonly onClosed: (listener: TcpListener) => void,
  ) {
    const bound = server.address();
    if (bound === null || typeof bound === 'string') throw new FastblockError(ErrorCode.INTERNAL, 'TCP listener has no address', {});
    this.address = { host: bound.address, port: bound.port };
  }

  static async open(
    address: NetAddress,
    shard: number,
    daemon: string,
    handler: InboundHandler,
    options: TcpOptions,
    logger: Logger,
    slabs: ReceiveSlabPool,
    onClosed: (listener: TcpListener) => void,
  ): Promise<TcpListener> {
    // Paused on connect: each connection's handle moves to a socket that reads with onread (kernel/net/accepted-socket.ts).
    const server = createServer({ noDelay: true, pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'EADDRINUSE' ? ' (another daemon there? choose another port)' : err.code === 'EADDRNOTAVAIL' ? ' (no such local address)' : '';
        reject(new FastblockError(ErrorCode.IO_ERROR, `cannot listen on ${address.host}:${address.port}: ${err.code ?? err.message}${hint}`, { address, code: err.code }));
      });
      server.listen(address.port, address.host, () => resolve());
    });
    const listener = new TcpListener(server, onClosed);
    server.on('connection', (socket) => {
      const connection = new InboundTcpConnection(socket, shard, daemon, handler, options, logger, slabs, (c) => listener.connections.delete(c));
      listener.connections.add(connection);
    });
    server.on('error', (err) => logger.error({ err, address }, 'listener error'));
    return listener;
  }

  /** Per-connection queue sizes, for tests and status. */
  stats(): { connections: number; sendQueuedBytes: number; receiveBufferedBytes: number } {
    let sendQueuedBytes = 0;
    let receiveBufferedBytes = 0;
    for (const c of this.connections) {
      sendQueuedBytes += c.bufferedBytes;
      receiveBufferedBytes += c.receiveBufferedBytes;
    }
    return { connections: this.connections.size, sendQueuedBytes, receiveBufferedBytes };
  }

  async close(): Promise<void> {
    this.onClosed(this);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const connection of this.connections) connection.close('listener closed');
    await closed;
  }
}
