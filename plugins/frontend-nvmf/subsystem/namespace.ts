/**
 * A namespace: an exported volume seen as logical blocks. The LBA size is the volume's block size
 * (4096), the unit it handles without read-modify-write. Identifiers (UUID, NGUID) are derived from
 * the subsystem NQN and the volume name, so re-exporting the same image gives the host the same
 * identity and a different image never collides with it.
 */
import { createHash } from 'node:crypto';
import type { BlockVolume } from '../../../kernel/contracts/block.js';
import { ErrorCode, FastblockError } from '../../../kernel/errors.js';

export class Namespace {
  readonly lbaShift: number;
  /** Logical blocks as of the last size check (Identify Namespace NSZE/NCAP/NUSE). */
  private blockCount: number;
  readonly uuid: Uint8Array;
  readonly nguid: Uint8Array;

  constructor(
    readonly nsid: number,
    readonly volume: BlockVolume,
    subsystemNqn: string,
    /**
     * The volume acknowledges writes before they are durable (a writeback export's write-back log):
     * the controller reports a volatile write cache, so hosts send Flush (and FUA) at commit points.
     */
    readonly volatileWriteCache = false,
  ) {
    const shift = Math.log2(volume.blockSize);
    if (!Number.isInteger(shift) || shift < 9 || shift > 16) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `volume ${volume.name} has a block size NVMe cannot express`, { blockSize: volume.blockSize });
    }
    this.lbaShift = shift;
    this.blockCount = Math.floor(volume.size / volume.blockSize);
    const digest = createHash('sha256').update(`fastblock\0${subsystemNqn}\0${nsid}\0${volume.name}`).digest();
    // RFC 9562 layout: version 8 (vendor-specific, derived by hash), variant 10.
    this.uuid = Uint8Array.from(digest.subarray(0, 16));
    this.uuid[6] = (this.uuid[6]! & 0x0f) | 0x80;
    this.uuid[8] = (this.uuid[8]! & 0x3f) | 0x80;
    this.nguid = Uint8Array.from(digest.subarray(16, 32));
  }

  get blocks(): number {
    return this.blockCount;
  }

  /**
   * Takes the volume's current size (an image resized in the cluster map); true when it changed,
   * which the target reports to hosts as a Namespace Attribute Changed event.
   */
  refreshSize(): boolean {
    const blocks = Math.floor(this.volume.size / this.blockSize);
    if (blocks === this.blockCount) return false;
    this.blockCount = blocks;
    return true;
  }

  get blockSize(): number {
    return 1 << this.lbaShift;
  }

  get uuidString(): string {
    const hex = Buffer.from(this.uuid).toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
}
