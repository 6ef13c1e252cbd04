/**
 * Typed calls over a TransportConnection: encode the request header, send it with its payload,
 * decode the response header. Errors the server threw arrive as the same FastblockError.
 */
import type { InboundMessage, Payload, RequestOptions, TransportConnection } from '../contracts/transport.js';
import type { RpcMessage, RpcMethod } from './rpc-method.js';

export interface RpcResult<Res> {
  readonly response: Res;
  /** The reply's raw payload (empty when there is none). */
  readonly payload: Uint8Array;
}

export function call<Req, Res>(
  connection: TransportConnection,
  method: RpcMethod<Req, Res>,
  request: Req,
  payload?: Payload,
  options?: RequestOptions,
): Promise<RpcResult<Res>> {
  let header: Uint8Array;
  try {
    header = method.request.encode(request);
  } catch (err) {
    return Promise.reject(err);
  }
  return connection
    .request(method.id, header, payload, options)
    .then((reply) => ({ response: method.response.decode(reply.header), payload: reply.payload }));
}

/**
 * A call whose reply is consumed at once: `use` runs as the reply arrives, with its payload valid
 * only until `use` returns (copy what must outlive it), and the promise resolves with its result.
 * On a transport with requestBorrowed() the reply's bytes are then reused, which saves fresh
 * memory per large reply; on any other it is call() with `use` applied.
 */
export function callBorrowed<Req, Res, T>(
  connection: TransportConnection,
  method: RpcMethod<Req, Res>,
  request: Req,
  payload: Payload | undefined,
  use: (response: Res, payload: Uint8Array) => T,
  options?: RequestOptions,
): Promise<T> {
  let header: Uint8Array;
  try {
    header = method.request.encode(request);
  } catch (err) {
    return Promise.reject(err);
  }
  // Inline arrows: a closure bound to a name costs a defineProperty per call when run through tsx (keepNames).
  if (connection.requestBorrowed) return connection.requestBorrowed(method.id, header, payload, (reply) => use(method.response.decode(reply.header), reply.payload), options);
  return connection.request(method.id, header, payload, options).then((reply) => use(method.response.decode(reply.header), reply.payload));
}

/** One-way: nothing comes back, and nothing is sent if the connection is down. */
export function notify<Msg>(connection: TransportConnection, message: RpcMessage<Msg>, value: Msg, payload?: Payload): void {
  connection.send(message.id, message.message.encode(value), payload);
}
