/**
 * An accepted connection that reads into buffers we pick (Node's `onread`).
 *
 * Node offers `onread` only on sockets it creates for connect(); an accepted socket reads every
 * chunk into a fresh allocation, which a frame decoder then copies once more to assemble a large
 * frame, and whose churn of external memory keeps V8's garbage collector busy. The listening
 * server is therefore created with `pauseOnConnect` (so the socket Node made never reads), and
 * the connection's handle moves into a socket of our own that has `onread`. Node's socket is
 * destroyed without its handle, which closes nothing but keeps the server's connection count
 * right.
 *
 * `_handle` is not a documented property: if a Node version lacks it, the accepted socket is
 * returned as it is and the caller falls back to its 'data' events.
 */
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';

interface HandleCarrier {
  _handle: unknown;
}

/** Options Node's Socket constructor takes that its typings leave out. */
type AdoptOptions = SocketConstructorOpts & { readonly handle: object; readonly onread: OnReadOpts };
const AdoptingSocket = Socket as unknown as new (options: AdoptOptions) => Socket;

/** A socket over `accepted`'s connection reading through `onread`, or undefined (use `accepted` as it is). */
export function adoptWithOnread(accepted: Socket, onread: OnReadOpts): Socket | undefined {
  const carrier = accepted as unknown as HandleCarrier;
  const handle = carrier._handle;
  if (handle === null || typeof handle !== 'object') return undefined;
  carrier._handle = null;
  accepted.destroy();
  return new AdoptingSocket({ handle, onread, readable: true, writable: true });
}
