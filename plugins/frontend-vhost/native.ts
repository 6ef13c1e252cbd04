/**
 * The addon (native/vhost_native.cc): what Node cannot do for a vhost-user back-end. Loaded from
 * native/build/Release; everything above it is TypeScript.
 */
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { loadNativeAddon } from '../../kernel/native-addon.js';

export interface Watcher {
  /** Stops polling; the callback is not called again. */
  stop(): void;
}

export interface VhostNative {
  /** A non-blocking listening unix socket at path. */
  listen(path: string): number;
  /** A connected fd, or -1 when none is pending. */
  accept(fd: number): number;
  /** A non-blocking client socket connected to path (tests play the front-end with it). */
  connect(path: string): number;
  socketPair(): [number, number];
  /** [bytes, ...fds]: bytes 0 at end of stream, -1 when nothing is ready. */
  recv(fd: number, into: Uint8Array): number[];
  send(fd: number, data: Uint8Array, fds?: readonly number[]): number;
  close(fd: number): void;
  /** A MAP_SHARED read-write mapping; unmap() releases it and detaches the buffer. */
  mmap(fd: number, length: number, offset: number): ArrayBuffer;
  unmap(buffer: ArrayBuffer): void;
  memfd(name: string, size: number): number;
  eventfd(): number;
  eventfdWrite(fd: number): void;
  eventfdRead(fd: number): number;
  /** A full memory barrier (store-load ordering for event-idx). */
  fence(): void;
  /** Calls onReadable on the event loop whenever fd is readable; drains an eventfd first if asked. */
  Watcher: new (fd: number, onReadable: () => void, drainEventfd?: boolean) => Watcher;
}

let loaded: VhostNative | undefined;

export function vhostNative(): VhostNative {
  if (loaded) return loaded;
  const { addon, error, candidates } = loadNativeAddon<VhostNative>(import.meta.url, 'vhost_native.node');
  if (!addon) throw new FastblockError(ErrorCode.PLUGIN, `the vhost addon does not load (npm run build builds it): ${error?.message}`, { candidates });
  loaded = addon;
  return loaded;
}
