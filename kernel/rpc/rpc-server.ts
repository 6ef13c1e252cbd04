/**
 * The dispatcher behind a listener: method id -> handler. It is an InboundHandler, so any
 * Transport serves it. Services (control, monitor, ...) add their methods; typed handlers get
 * decoded headers, raw handlers (a service that decodes its own header) get the frame.
 *
 * A request for an unknown method, or with a header that does not decode, is answered with an
 * error (NOT_FOUND, PROTOCOL); the connection stays up: the frame itself was well formed.
 *
 * A method registered with `{ borrowsPayload: true }` promises that its handler uses the request's
 * payload (and any `bytes` field decoded from its header, a view as well) only until its reply is
 * sent; the transport then reuses those received bytes (InboundHandler.borrowsPayload). The reply
 * may send the payload back as it is.
 */
import type {
  InboundConnection,
  InboundHandler,
  InboundMessage,
  OutboundReply,
  Payload,
} from '../contracts/transport.js';
import { ErrorCode, FastblockError } from '../errors.js';
import type { RpcMessage, RpcMethod } from './rpc-method.js';

export interface RpcCall {
  readonly connection: InboundConnection;
  /** The request's raw payload (a view; copy it to keep it past the handler). */
  readonly payload: Uint8Array;
}

export interface RpcReply<Res> {
  readonly response: Res;
  readonly payload?: Payload;
}

export type RpcHandler<Req, Res> = (request: Req, call: RpcCall) => Promise<RpcReply<Res>> | RpcReply<Res>;
export type RawHandler = (connection: InboundConnection, message: InboundMessage) => Promise<OutboundReply> | OutboundReply;
export type MessageHandler<Msg> = (message: Msg, call: RpcCall) => void;

export interface MethodOptions {
  /** The handler uses the request's received bytes only until its reply is sent (see above). Default false. */
  readonly borrowsPayload?: boolean;
}

interface Entry {
  readonly name: string;
  readonly borrowsPayload?: boolean;
  readonly request?: RawHandler;
  readonly message?: (connection: InboundConnection, message: InboundMessage) => void;
}

export class RpcServer implements InboundHandler {
  private readonly entries = new Map<number, Entry>();
  private readonly closeListeners = new Set<(connection: InboundConnection, reason: string) => void>();

  /** Adds a typed method; returns the function that removes it. */
  handle<Req, Res>(method: RpcMethod<Req, Res>, handler: RpcHandler<Req, Res>, options: MethodOptions = {}): () => void {
    const encode = (reply: RpcReply<Res>): OutboundReply => ({ header: method.response.encode(reply.response), payload: reply.payload });
    return this.handleRaw(method.id, method.name, (connection, message) => {
      const request = method.request.decode(message.header);
      const reply = handler(request, { connection, payload: message.payload });
      // A synchronous handler is answered in the same turn (no promise hop on the hot path).
      return reply instanceof Promise ? reply.then(encode) : encode(reply);
    }, options);
  }

  /** Adds a method whose header the handler decodes itself (e.g. the data service's fast path). */
  handleRaw(id: number, name: string, handler: RawHandler, options: MethodOptions = {}): () => void {
    return this.add(id, { name, request: handler, borrowsPayload: options.borrowsPayload === true });
  }

  /** Adds a one-way message type. */
  on<Msg>(message: RpcMessage<Msg>, handler: MessageHandler<Msg>): () => void {
    return this.add(message.id, {
      name: message.name,
      message: (connection, inbound) => handler(message.message.decode(inbound.header), { connection, payload: inbound.payload }),
    });
  }

  onClose(listener: (connection: InboundConnection, reason: string) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** "0x0101 fastblock.control.Control/Status", sorted by id. */
  methods(): string[] {
    return [...this.entries].sort(([a], [b]) => a - b).map(([id, e]) => `0x${id.toString(16).padStart(4, '0')} ${e.name}`);
  }

  onRequest(connection: InboundConnection, message: InboundMessage): Promise<OutboundReply> | OutboundReply {
    const handler = this.entries.get(message.method)?.request;
    if (!handler) {
      throw new FastblockError(ErrorCode.NOT_FOUND, `no RPC method 0x${message.method.toString(16)} on this daemon`, { method: message.method });
    }
    return handler(connection, message);
  }

  borrowsPayload(method: number): boolean {
    return this.entries.get(method)?.borrowsPayload === true;
  }

  onMessage(connection: InboundConnection, message: InboundMessage): void {
    const handler = this.entries.get(message.method)?.message;
    // One-way messages have nobody to answer; an unknown one is dropped (a newer peer's message).
    if (handler) handler(connection, message);
  }

  onConnectionClosed(connection: InboundConnection, reason: string): void {
    for (const listener of this.closeListeners) listener(connection, reason);
  }

  private add(id: number, entry: Entry): () => void {
    const existing = this.entries.get(id);
    if (existing) {
      throw new FastblockError(ErrorCode.ALREADY_EXISTS, `RPC method id 0x${id.toString(16)} is taken by ${existing.name}; ${entry.name} needs another`, {
        id,
        existing: existing.name,
      });
    }
    this.entries.set(id, entry);
    return () => {
      if (this.entries.get(id) === entry) this.entries.delete(id);
    };
  }
}
