/**
 * Guest memory as the front-end shared it (SET_MEM_TABLE): regions of the guest's physical address
 * space, each mapped from the fd QEMU passed. Rings are addressed in QEMU's own virtual addresses,
 * descriptors in guest physical addresses; both translate to views on the mappings, and any range
 * that is not wholly inside guest memory is refused: nothing is read or written outside it.
 */
import type { MemoryRegionSpec } from './protocol.js';
import type { VhostNative } from './native.js';

interface MappedRegion {
  readonly guestAddress: number;
  readonly size: number;
  readonly userAddress: bigint;
  /** The region's bytes (the mapping starts mmapOffset earlier). */
  readonly bytes: Uint8Array;
  readonly mapping: ArrayBuffer;
}

export class GuestMemory {
  private constructor(private readonly regions: readonly MappedRegion[], private readonly native?: VhostNative) {}

  /** Maps every region's fd; closes the fds (the mappings keep the memory). */
  static map(native: VhostNative, specs: readonly MemoryRegionSpec[]): GuestMemory {
    const regions: MappedRegion[] = [];
    try {
      for (const spec of specs) {
        // mmap offsets must be page aligned: map from the page boundary and skip the rest.
        const skew = spec.mmapOffset % 4096;
        const mapping = native.mmap(spec.fd, spec.size + skew, spec.mmapOffset - skew);
        regions.push({
          guestAddress: spec.guestAddress,
          size: spec.size,
          userAddress: spec.userAddress,
          bytes: new Uint8Array(mapping, skew, spec.size),
          mapping,
        });
      }
    } catch (err) {
      for (const region of regions) native.unmap(region.mapping);
      throw err;
    } finally {
      for (const spec of specs) native.close(spec.fd);
    }
    return new GuestMemory(regions, native);
  }

  /** Guest memory over plain buffers (unit tests build rings in them). */
  static fromBuffers(regions: readonly { guestAddress: number; userAddress: bigint; bytes: Uint8Array }[]): GuestMemory {
    return new GuestMemory(regions.map((r) => ({ ...r, size: r.bytes.length, mapping: r.bytes.buffer as ArrayBuffer })));
  }

  /**
   * Views on [address, address+length) of guest physical memory, one per region it crosses, or
   * undefined when any byte of it is outside guest memory.
   */
  guest(address: number, length: number): Uint8Array[] | undefined {
    const out: Uint8Array[] = [];
    let at = address;
    let left = length;
    while (left > 0) {
      const region = this.regionAt(at);
      if (!region) return undefined;
      const start = at - region.guestAddress;
      const n = Math.min(left, region.size - start);
      out.push(region.bytes.subarray(start, start + n));
      at += n;
      left -= n;
    }
    return out;
  }

  /** One view on [address, address+length) when it lies inside a single region, else undefined. */
  view(address: number, length: number): Uint8Array | undefined {
    const region = this.regionAt(address);
    if (region === undefined) return undefined;
    const start = address - region.guestAddress;
    return start + length <= region.size ? region.bytes.subarray(start, start + length) : undefined;
  }

  /** The little-endian u32 at a guest physical address, read in place; undefined unless inside one region. */
  u32(address: number): number | undefined {
    const region = this.regionAt(address);
    if (region === undefined) return undefined;
    const at = address - region.guestAddress;
    if (at + 4 > region.size) return undefined;
    const b = region.bytes;
    return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
  }

  private regionAt(address: number): MappedRegion | undefined {
    for (const region of this.regions) if (address >= region.guestAddress && address < region.guestAddress + region.size) return region;
    return undefined;
  }

  /** One contiguous view on a front-end virtual address range (a ring), or undefined. */
  user(address: bigint, length: number): Uint8Array | undefined {
    for (const region of this.regions) {
      const start = address - region.userAddress;
      if (start >= 0n && start + BigInt(length) <= BigInt(region.size)) {
        return region.bytes.subarray(Number(start), Number(start) + length);
      }
    }
    return undefined;
  }

  /** Releases the mappings; views taken earlier read as empty afterwards. */
  unmap(): void {
    if (!this.native) return;
    for (const region of this.regions) this.native.unmap(region.mapping);
  }
}
