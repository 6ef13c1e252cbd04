/**
 * Transport over TCP. One instance per thread: the daemon's main thread has one (plugin.ts),
 * and each OSD shard's worker makes its own with createTransport(recipe.options).
 */
import { pino, type Logger } from 'pino';
import type {
  InboundHandler,
  ListenOptions,
  NetAddress,
  RemoteEndpoint,
  Transport,
  TransportConnection,
  TransportListener,
  TransportRecipe,
} from '../../kernel/contracts/transport.js';
import { ErrorCode, FastblockError, assert } from '../../kernel/errors.js';
import { ReceiveSlabPool } from '../../kernel/rpc/receive-slabs.js';
import { TcpConnection } from './tcp-connection.js';
import { TcpListener } from './tcp-listener.js';
import { DEFAULT_TCP_OPTIONS, type TcpOptions } from './tcp-options.js';

export class TcpTransport implements Transport {
  readonly name = 'tcp';
  readonly recipe: TransportRecipe;
  private readonly options: TcpOptions;
  private readonly connections = new Map<string, TcpConnection>();
  private readonly listeners = new Set<TcpListener>();
  /** Receive slabs of every connection, in and out: a thread's connections share what is idle. */
  private readonly slabs = new ReceiveSlabPool();
  private closed = false;

  constructor(options: Partial<TcpOptions> = {}, private readonly logger: Logger = pino({ level: 'info' })) {
    this.options = { ...DEFAULT_TCP_OPTIONS, ...options };
    assert(this.options.maxBufferedBytes >= this.options.maxPayloadBytes, 'tcp.maxBufferedBytes must hold at least one largest frame');
    this.recipe = { module: import.meta.url, options: { ...this.options } };
  }

  async listen(address: NetAddress, handler: InboundHandler, options: ListenOptions = {}): Promise<TransportListener> {
    this.assertOpen();
    const listener = await TcpListener.open(address, options.shard ?? 0, this.options.source, handler, this.options, this.logger, this.slabs, (l) => this.listeners.delete(l));
    this.listeners.add(listener);
    this.logger.info({ address: listener.address, shard: options.shard ?? 0 }, 'listening');
    return listener;
  }

  connect(remote: RemoteEndpoint, localShard = 0): TransportConnection {
    this.assertOpen();
    const key = `${localShard}>${remote.address.host}:${remote.address.port}/${remote.shard}`;
    let connection = this.connections.get(key);
    if (!connection) {
      connection = new TcpConnection(remote, localShard, this.options, this.logger, this.slabs, (c) => {
        if (this.connections.get(key) === c) this.connections.delete(key);
      });
      this.connections.set(key, connection);
    }
    return connection;
  }

  /** Queue sizes over every listener and connection, and receive slab reuse, for tests and status. */
  stats(): {
    listeners: number;
    connections: number;
    sendQueuedBytes: number;
    inboundSendQueuedBytes: number;
    inboundReceiveBufferedBytes: number;
    slabsAllocated: number;
    slabsReused: number;
  } {
    let sendQueuedBytes = 0;
    for (const c of this.connections.values()) sendQueuedBytes += c.bufferedBytes;
    let inboundSendQueuedBytes = 0;
    let inboundReceiveBufferedBytes = 0;
    for (const l of this.listeners) {
      const s = l.stats();
      inboundSendQueuedBytes += s.sendQueuedBytes;
      inboundReceiveBufferedBytes += s.receiveBufferedBytes;
    }
    return {
      listeners: this.listeners.size,
      connections: this.connections.size,
      sendQueuedBytes,
      inboundSendQueuedBytes,
      inboundReceiveBufferedBytes,
      slabsAllocated: this.slabs.allocated,
      slabsReused: this.slabs.reused,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.connections.values()].map((c) => c.close()));
    await Promise.all([...this.listeners].map((l) => l.close()));
  }

  private assertOpen(): void {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, 'tcp transport is closed', {});
  }
}

/** Entry point named by TransportRecipe: a worker thread's own transport, logging at `logLevel`. */
export function createTransport(options: Partial<TcpOptions> & { readonly logLevel?: string }): Transport {
  const { logLevel = 'info', ...tcp } = options;
  return new TcpTransport(tcp, pino({ level: logLevel }));
}
