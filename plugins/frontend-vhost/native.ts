/**
 * The addon (native/vhost_native.cc): what Node cannot do for a vhost-user back-end. Loaded from
 * native/build/Release; everything above it is TypeScript.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

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

const here = dirname(fileURLToPath(import.meta.url));
// From the sources (tsx) the addon is beside this file; from dist/ it is in the source tree.
const candidates = [join(here, 'native', 'build', 'Release', 'vhost_native.node'), join(here, '..', '..', '..', 'plugins', 'frontend-vhost', 'native', 'build', 'Release', 'vhost_native.node')];

let loaded: VhostNative | undefined;

export function vhostNative(): VhostNative {
  if (loaded) return loaded;
  const addonPath = candidates.find((path) => existsSync(path));
  if (!addonPath) throw new FastblockError(ErrorCode.PLUGIN, 'the vhost addon is not built (npm run build)', { candidates });
  loaded = createRequire(import.meta.url)(addonPath) as VhostNative;
  return loaded;
}
