/**
 * A Transport inside one process, for unit tests of the client library: listeners are found by
 * "host:port", requests are calls into the handler, and a listener can be made unreachable or
 * black-holed (requests time out) to exercise the client's retries. Replies to requestBorrowed()
 * are scribbled over once read, as reused receive buffers would be.
 */
import type {
  ConnectionState,
  InboundConnection,
  InboundHandler,
  InboundMessage,
  NetAddress,
  Payload,
  RemoteEndpoint,
  RequestOptions,
  Transport,
  TransportConnection,
  TransportListener,
} from '../../kernel/contracts/transport.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

type Fault = 'none' | 'refuse' | 'blackhole';

function join(payload?: Payload): Uint8Array {
  if (!payload || payload.length === 0) return new Uint8Array(0);
  const out = new Uint8Array(payload.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of payload) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export class InMemoryNetwork {
  readonly listeners = new Map<string, InboundHandler>();
  readonly faults = new Map<string, Fault>();

  transport(): Transport {
    return new InMemoryTransport(this);
  }

  setFault(address: NetAddress, fault: Fault): void {
    this.faults.set(`${address.host}:${address.port}`, fault);
  }
}

class InMemoryTransport implements Transport {
  readonly name = 'memory';
  private nextId = 1;
  private readonly connections = new Map<string, TransportConnection>();

  constructor(private readonly network: InMemoryNetwork) {}

  async listen(address: NetAddress, handler: InboundHandler): Promise<TransportListener> {
    const key = `${address.host}:${address.port}`;
    this.network.listeners.set(key, handler);
    return { address, close: async () => void this.network.listeners.delete(key) };
  }

  connect(remote: RemoteEndpoint): TransportConnection {
    const key = `${remote.address.host}:${remote.address.port}/${remote.shard}`;
    let connection = this.connections.get(key);
    if (!connection) {
      connection = this.makeConnection(remote);
      this.connections.set(key, connection);
    }
    return connection;
  }

  private makeConnection(remote: RemoteEndpoint): TransportConnection {
    const network = this.network;
    const addressKey = `${remote.address.host}:${remote.address.port}`;
    const inbound: InboundConnection = {
      id: this.nextId++,
      remote: 'memory',
      shard: remote.shard,
      send: () => undefined,
      close: () => undefined,
    };
    const connection: TransportConnection = {
      remote,
      state: 'connected' as ConnectionState,
      async request(method: number, header: Uint8Array, payload?: Payload, options?: RequestOptions): Promise<InboundMessage> {
        const fault = network.faults.get(addressKey) ?? 'none';
        const handler = network.listeners.get(addressKey);
        const timeoutMs = options?.timeoutMs ?? 1000;
        if (fault === 'blackhole') {
          await new Promise((resolve) => setTimeout(resolve, timeoutMs));
          throw new FastblockError(ErrorCode.TIMEOUT, 'request timed out', { remote: addressKey });
        }
        if (fault === 'refuse' || !handler) throw new FastblockError(ErrorCode.CLOSED, 'connection refused', { remote: addressKey });
        const reply = await handler.onRequest(inbound, { method, header, payload: join(payload) });
        return { method, header: reply.header, payload: join(reply.payload) };
      },
      // As the TCP transport lends its receive buffers: once `use` returns, the reply's bytes are
      // scribbled over, so a caller that kept a view of them reads garbage.
      async requestBorrowed<T>(method: number, header: Uint8Array, payload: Payload | undefined, use: (reply: InboundMessage) => T, options?: RequestOptions): Promise<T> {
        const reply = await connection.request(method, header, payload, options);
        try {
          return use(reply);
        } finally {
          reply.header.fill(0xee);
          reply.payload.fill(0xee);
        }
      },
      send: () => undefined,
      drained: async () => undefined,
      onStateChange: () => () => undefined,
      close: async () => undefined,
    };
    return connection;
  }

  async close(): Promise<void> {
    this.connections.clear();
  }
}
