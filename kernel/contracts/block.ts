/**
 * BlockVolume: an image as a block device. The client library (client/) provides it for real
 * images; frontends (NBD, vhost-user-blk, NVMe/TCP) consume it and know nothing else of the cluster.
 */

export interface BlockWriteOptions {
  /** Force unit access: durable before the promise resolves (already true of every replicated write). */
  readonly fua?: boolean;
  /**
   * The caller keeps these bytes in a cache of its own (a writeback export's read cache fills with
   * what it writes): caches below it need not keep them, as Ceph's FADVISE_DONTNEED says to an
   * OSD. A hint: blocks a cache below already holds are still updated (it never serves stale
   * bytes), only new ones are not inserted, and a volume may ignore it. The client library carries
   * it to the OSD (DataRequest.flags NOCACHE), whose store then does not cache the write.
   */
  readonly cachedAbove?: boolean;
}

/** One write of a BlockVolume.writeMany call. */
export interface BlockWrite {
  readonly offset: number;
  readonly data: readonly Uint8Array[];
}

export interface BlockVolume {
  /** "pool/image". */
  readonly name: string;
  /** Size in bytes. */
  readonly size: number;
  /** Smallest unit of I/O the volume handles without read-modify-write (4096). */
  readonly blockSize: number;
  /**
   * Reads [offset, offset+length). When `into` is given the bytes land there (zero copy into a
   * frontend's buffer, e.g. mapped guest memory) and it is returned; otherwise a new buffer.
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Writes a scatter list at offset. Resolves only when the write is durable on a majority. */
  write(offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions): Promise<void>;
  /**
   * Optional: several writes that do not overlap one another, as one call; resolves once all are durable
   * (as write() does), rejects if any failed (then any subset may have been applied). A provider may send
   * the writes that fall in one `writeGroupBytes`-aligned range (an object) as one request.
   * `options` hold for every write of the call.
   */
  writeMany?(writes: readonly BlockWrite[], options?: BlockWriteOptions): Promise<void>;
  /** With writeMany: the aligned range whose writes the provider sends together (the object size). */
  readonly writeGroupBytes?: number;
  /** Every write resolved before flush() was called is durable when it resolves. */
  flush(): Promise<void>;
  /** The range reads as zeroes afterwards; space may be released. */
  discard(offset: number, length: number): Promise<void>;
  writeZeroes(offset: number, length: number, options?: BlockWriteOptions): Promise<void>;
  close(): Promise<void>;
}

/** Opens volumes by name. Registered by the client library (or a test target). */
export interface BlockVolumeProvider {
  open(name: string): Promise<BlockVolume>;
  /** Names the provider can open, for listings (NBD OPT_LIST, NVMe discovery). */
  list(): Promise<string[]>;
}
