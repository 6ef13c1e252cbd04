/**
 * Transport: moves frames between daemons. A frame is a small protobuf-encoded header plus a raw
 * payload tail; the transport never looks inside either, and never copies the payload into the
 * header. The RPC layer (kernel/rpc) gives method ids and headers their meaning.
 *
 * Implementations: plugins/transport-tcp (sockets), plugins/transport-rdma (verbs).
 */

export interface NetAddress {
  readonly host: string;
  readonly port: number;
}

/** Where a connection goes: a daemon's address and the shard on it that will serve us. */
export interface RemoteEndpoint {
  readonly address: NetAddress;
  /** Target shard on the remote daemon. Shard i talks only to shard i (DESIGN.md, "Shards"). */
  readonly shard: number;
}

/**
 * A payload as a scatter list. Buffers are sent in order without being joined (writev), and the
 * caller must not modify them until the send completes (request settles or `send` drains).
 */
export type Payload = readonly Uint8Array[];

/**
 * A frame as it arrives. `header` and `payload` are views into the receive buffer, never copies.
 * By default the transport never reuses or overwrites received bytes, so a view stays valid for
 * as long as it is referenced (past the handler, into a reply's payload, ...); but it keeps the
 * whole buffer it views alive (for TCP a receive slab shared with neighbouring frames, 256 KiB to
 * 4 MiB), so code that stores payloads for long copies them.
 *
 * The exceptions are opt-in, where the consumer says when it is done with the bytes, which the
 * transport may then reuse: a reply to requestBorrowed() (valid while its `use` runs) and a
 * request whose handler borrows it (InboundHandler.borrowsPayload: valid until the reply is sent),
 * and a one-way message whose handler borrows it (InboundHandler.borrowsMessage: valid while
 * onMessage runs).
 */
export interface InboundMessage {
  readonly method: number;
  readonly header: Uint8Array;
  readonly payload: Uint8Array;
}

/** What a request handler answers. Throwing (or rejecting) sends an error reply instead. */
export interface OutboundReply {
  readonly header: Uint8Array;
  readonly payload?: Payload;
}

export interface RequestOptions {
  /** Milliseconds before the request fails with TIMEOUT. Default: the transport's configured timeout. */
  readonly timeoutMs?: number;
}

/** The accepting side's view of one peer connection. */
export interface InboundConnection {
  readonly id: number;
  /** Remote address as "host:port", for logs. */
  readonly remote: string;
  /** The local shard the peer asked for in its hello. */
  readonly shard: number;
  /** One-way message back to this peer (e.g., a map push). Best effort. */
  send(method: number, header: Uint8Array, payload?: Payload): void;
  close(reason: string): void;
}

export interface InboundHandler {
  /** A request: resolve with the reply, or throw a FastblockError to send its code and message back. */
  onRequest(connection: InboundConnection, message: InboundMessage): Promise<OutboundReply> | OutboundReply;
  /** A one-way message; nothing is sent back. */
  onMessage?(connection: InboundConnection, message: InboundMessage): void;
  onConnectionClosed?(connection: InboundConnection, reason: string): void;
  /**
   * Optional, asked once per request: true when the handler of `method` only borrows a request's
   * header and payload, using no view of them once its reply (or error) has been sent, or once
   * its result settles if the connection closed first. The reply's payload may be views of the
   * request: the transport reuses those bytes only after the reply was written. Absent or false:
   * the request's bytes are never reused.
   */
  borrowsPayload?(method: number): boolean;
  /**
   * Optional, asked once per one-way message: true when onMessage for `method` uses no view of
   * the message's header or payload once it returns (it decoded or copied what it keeps). The
   * transport may then reuse those bytes. Absent or false: a message's bytes are never reused.
   */
  borrowsMessage?(method: number): boolean;
}

export interface TransportListener {
  /** The bound address (the real port when 0 was asked for). */
  readonly address: NetAddress;
  close(): Promise<void>;
}

export type ConnectionState = 'connecting' | 'connected' | 'backoff' | 'closed';

/**
 * An outbound connection. It connects lazily, reconnects with backoff after a failure, and keeps
 * many requests in flight (pipelining). Requests issued while disconnected wait for the connection
 * until their timeout; requests in flight when it drops fail with CLOSED (outcome unknown).
 */
export interface TransportConnection {
  readonly remote: RemoteEndpoint;
  readonly state: ConnectionState;
  request(method: number, header: Uint8Array, payload?: Payload, options?: RequestOptions): Promise<InboundMessage>;
  /**
   * As request(), but the reply is borrowed: `use` runs as soon as it arrives, its header and
   * payload are valid only until `use` returns (copy what must outlive it; the transport may then
   * reuse the bytes), and the promise resolves with what `use` returns, or rejects with what it
   * throws. Cheaper for large replies that are consumed at once (copied into a caller's buffer,
   * checked, decoded). Optional to implement; without it, use request().
   */
  requestBorrowed?<T>(method: number, header: Uint8Array, payload: Payload | undefined, use: (reply: InboundMessage) => T, options?: RequestOptions): Promise<T>;
  /** One-way message; dropped if the connection is down. */
  send(method: number, header: Uint8Array, payload?: Payload): void;
  /** Resolves when the send buffer has drained below its high-water mark (backpressure). */
  drained(): Promise<void>;
  onStateChange(listener: (state: ConnectionState) => void): () => void;
  /** One-way messages the server pushes on this connection (InboundConnection.send). Optional to implement. */
  onMessage?(listener: (message: InboundMessage) => void): () => void;
  close(): Promise<void>;
}

export interface ListenOptions {
  /** The shard this listener serves; a hello naming another shard is refused. Default 0. */
  readonly shard?: number;
}

/**
 * How another thread makes its own instance of a transport (an OSD runs one per shard, each in
 * its worker): `const t = (await import(module)).createTransport(options)`. Both fields survive
 * structured cloning (postMessage, workerData).
 */
export interface TransportRecipe {
  readonly module: string;
  readonly options: Readonly<Record<string, unknown>>;
}

export interface Transport {
  /** Short name, e.g. "tcp" or "rdma". */
  readonly name: string;
  /** Present when the transport can be re-created in a worker thread. */
  readonly recipe?: TransportRecipe;
  listen(address: NetAddress, handler: InboundHandler, options?: ListenOptions): Promise<TransportListener>;
  /**
   * The connection from `localShard` to `remote`. One connection per (local shard, remote daemon,
   * remote shard): asking twice returns the same connection until it is closed.
   */
  connect(remote: RemoteEndpoint, localShard?: number): TransportConnection;
  /** Closes every listener and connection it made. */
  close(): Promise<void>;
}
