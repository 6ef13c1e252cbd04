/**
 * The native addon (native/src): io_uring ring, CRC32C, region locks, alignment. Loaded once
 * per thread; `undefined` when it was not built, and every caller has a pure-JS path for that case.
 */
import { loadNativeAddon } from '../../kernel/native-addon.js';

export interface NativeRing {
  read(fd: number, offset: number, buffers: Uint8Array | readonly Uint8Array[], tag: number): void;
  /** `durable`: RWF_DSYNC, on the medium when it completes. */
  write(fd: number, offset: number, buffers: Uint8Array | readonly Uint8Array[], tag: number, durable?: boolean): void;
  /** fdatasync */
  fsync(fd: number, tag: number): void;
  /** fallocate(ZERO_RANGE | KEEP_SIZE) */
  zero(fd: number, offset: number, length: number, tag: number): void;
  /** Hands every prepared operation to the kernel in one io_uring_enter; returns how many. */
  submit(): number;
  close(): void;
}

export interface NativeAddon {
  Ring: new (entries: number, maxTags: number, alignment: number, completions: Int32Array, onComplete: (count: number) => void) => NativeRing;
  crc32c(data: Uint8Array, seed?: number): number;
  readonly crc32cHardware: boolean;
  /** 0, or the errno of a conflicting lock (EAGAIN/EACCES). */
  lockRegion(fd: number, offset: number, length: number): number;
  /** Bytes of a block device, or -errno. */
  deviceSize(fd: number): number;
  /** Bytes from the start of `bytes` to its first address aligned to `alignment`. */
  alignmentOffset(bytes: Uint8Array, alignment: number): number;
  /** 0 when an io_uring can be created, else the errno that prevented it. */
  probeUring(): number;
  /** Grows a regular file to at least `bytes` (fallocate of its last page); 0 or errno. */
  extendTo(fd: number, bytes: number): number;
}

const loaded = loadNativeAddon<NativeAddon>(import.meta.url, 'blobstore_native.node');

export const native: NativeAddon | undefined = loaded.addon;
/** Why the addon is missing, for the fallback's log line. */
export const nativeLoadError: Error | undefined = loaded.error;
