/**
 * What the guest's virtio-blk driver learns about the disk: the feature bits offered and the config
 * space (struct virtio_blk_config, little-endian). The guest sees the image's size and a 4 KiB
 * logical block.
 */
import { Feature, bits } from './protocol.js';

const SECTOR = 512;

export const BLK_LIMITS = {
  /** Largest data segment the guest may hand us. */
  sizeMax: 1024 * 1024,
  /** Data segments per request; the ring (128 entries by default) holds header and status too. */
  segMax: 126,
  maxDiscardSectors: (1 << 30) / SECTOR,
  maxWriteZeroesSectors: (1 << 30) / SECTOR,
  /** Segments per DISCARD / WRITE_ZEROES request. */
  maxRangeSegments: 1,
} as const;

export const BLK_DEVICE_FEATURES = bits(
  Feature.VERSION_1,
  Feature.RING_INDIRECT_DESC,
  Feature.RING_EVENT_IDX,
  Feature.BLK_SIZE_MAX,
  Feature.BLK_SEG_MAX,
  Feature.BLK_BLK_SIZE,
  Feature.BLK_FLUSH,
  Feature.BLK_MQ,
  Feature.BLK_DISCARD,
  Feature.BLK_WRITE_ZEROES,
);

export const BLK_CONFIG_SIZE = 60;

export function blkConfigSpace(volumeSize: number, blockSize: number, numQueues: number): Uint8Array {
  const out = new Uint8Array(BLK_CONFIG_SIZE);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(Math.floor(volumeSize / SECTOR)), true); // capacity, in 512-byte sectors
  view.setUint32(8, BLK_LIMITS.sizeMax, true);
  view.setUint32(12, BLK_LIMITS.segMax, true);
  // 16: geometry (not offered)
  view.setUint32(20, blockSize, true);
  // 24: topology (not offered)
  // 32: writeback, 33: unused
  view.setUint16(34, numQueues, true);
  view.setUint32(36, BLK_LIMITS.maxDiscardSectors, true);
  view.setUint32(40, BLK_LIMITS.maxRangeSegments, true);
  view.setUint32(44, blockSize / SECTOR, true); // discard_sector_alignment
  view.setUint32(48, BLK_LIMITS.maxWriteZeroesSectors, true);
  view.setUint32(52, BLK_LIMITS.maxRangeSegments, true);
  view.setUint8(56, 1); // write_zeroes_may_unmap
  return out;
}
