/**
 * Where things are on the device (docs/blobstore-format.md has the byte-level format).
 *
 *   page 0                 super block
 *   pages 1..              used-md-page mask, used-cluster mask, used-blob-id mask
 *   then                   md page region (mdPages pages)
 *   clusters 0..k-1        hold all of the above; blobs get clusters k..clusterCount-1
 *
 * Little-endian throughout; every page that carries state ends with its CRC32C.
 */
import { FastblockError, ErrorCode } from '../../../kernel/errors.js';
import { crc32c } from '../crc32c.js';

export const PAGE_SIZE = 4096;
export const SIGNATURE = 'FBBLOBS1';
export const FORMAT_VERSION = 1;
export const DEFAULT_CLUSTER_SIZE = 1 << 20;
/** Page offsets inside a blob are u32; clusters are indexed by u32; 0 marks a hole. */
export const NO_PAGE = 0xffffffff;

export interface Geometry {
  readonly deviceBytes: number;
  readonly clusterSize: number;
  readonly clusterCount: number;
  readonly pageMaskStart: number;
  readonly clusterMaskStart: number;
  readonly blobIdMaskStart: number;
  readonly maskPages: (bits: number) => number;
  readonly mdStart: number;
  readonly mdPages: number;
  /** Clusters at the start of the device that hold the super block, masks and md pages. */
  readonly metadataClusters: number;
}

function maskPages(bits: number): number {
  return Math.ceil((8 + Math.ceil(bits / 32) * 4 + 4) / PAGE_SIZE);
}

export function computeGeometry(deviceBytes: number, clusterSize: number, mdPages?: number): Geometry {
  if (clusterSize < PAGE_SIZE || (clusterSize & (clusterSize - 1)) !== 0) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'cluster size must be a power of two of at least one page', { clusterSize });
  }
  const clusterCount = Math.floor(deviceBytes / clusterSize);
  const md = mdPages ?? Math.max(16, clusterCount);
  const pageMaskStart = 1;
  const clusterMaskStart = pageMaskStart + maskPages(md);
  const blobIdMaskStart = clusterMaskStart + maskPages(clusterCount);
  const mdStart = blobIdMaskStart + maskPages(md);
  const metadataClusters = Math.ceil(((mdStart + md) * PAGE_SIZE) / clusterSize);
  if (clusterCount < metadataClusters + 1 || clusterCount > 0xfffffffe) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'device too small for a blobstore', {
      deviceBytes,
      clusterSize,
      neededBytes: (metadataClusters + 1) * clusterSize,
    });
  }
  return { deviceBytes, clusterSize, clusterCount, pageMaskStart, clusterMaskStart, blobIdMaskStart, maskPages, mdStart, mdPages: md, metadataClusters };
}

export interface SuperBlock {
  readonly clean: boolean;
  readonly geometry: Geometry;
  /** Incremented on every load, for the log. */
  readonly loadCount: number;
}

const O = { signature: 0, version: 8, clean: 12, pageSize: 16, clusterSize: 20, deviceBytes: 24, mdPages: 32, clusterCount: 36, loadCount: 40 } as const;

export function writeU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % 0x100000000, true);
  view.setUint32(at + 4, Math.floor(value / 0x100000000), true);
}

export function readU64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * 0x100000000;
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Seals a page: CRC32C of everything before the last four bytes, stored in them. */
export function sealPage(page: Uint8Array): void {
  viewOf(page).setUint32(page.length - 4, crc32c(page.subarray(0, page.length - 4)), true);
}

export function pageIntact(page: Uint8Array): boolean {
  return viewOf(page).getUint32(page.length - 4, true) === crc32c(page.subarray(0, page.length - 4));
}

export function encodeSuper(sb: SuperBlock, page: Uint8Array): void {
  page.fill(0);
  const view = viewOf(page);
  page.set(new TextEncoder().encode(SIGNATURE), O.signature);
  view.setUint32(O.version, FORMAT_VERSION, true);
  view.setUint32(O.clean, sb.clean ? 1 : 0, true);
  view.setUint32(O.pageSize, PAGE_SIZE, true);
  view.setUint32(O.clusterSize, sb.geometry.clusterSize, true);
  writeU64(view, O.deviceBytes, sb.geometry.deviceBytes);
  view.setUint32(O.mdPages, sb.geometry.mdPages, true);
  view.setUint32(O.clusterCount, sb.geometry.clusterCount, true);
  view.setUint32(O.loadCount, sb.loadCount, true);
  sealPage(page);
}

/** True when the page carries the blobstore signature (intact or not). */
export function hasSignature(page: Uint8Array): boolean {
  return new TextDecoder().decode(page.subarray(0, 8)) === SIGNATURE;
}

export function decodeSuper(page: Uint8Array, deviceBytes: number, device: string): SuperBlock {
  if (!hasSignature(page)) throw new FastblockError(ErrorCode.CORRUPT, `${device} holds no blobstore (bad super block signature)`, { device });
  if (!pageIntact(page)) throw new FastblockError(ErrorCode.CORRUPT, `super block of ${device} fails its CRC`, { device });
  const view = viewOf(page);
  const version = view.getUint32(O.version, true);
  if (version !== FORMAT_VERSION) throw new FastblockError(ErrorCode.CORRUPT, `unsupported blobstore version ${version}`, { device, version });
  if (view.getUint32(O.pageSize, true) !== PAGE_SIZE) throw new FastblockError(ErrorCode.CORRUPT, 'unsupported page size', { device });
  const recorded = readU64(view, O.deviceBytes);
  if (recorded > deviceBytes) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${device} is smaller than the blobstore on it`, { device, deviceBytes, formattedBytes: recorded });
  }
  const geometry = computeGeometry(recorded, view.getUint32(O.clusterSize, true), view.getUint32(O.mdPages, true));
  if (geometry.clusterCount !== view.getUint32(O.clusterCount, true)) throw new FastblockError(ErrorCode.CORRUPT, 'super block geometry mismatch', { device });
  return { clean: view.getUint32(O.clean, true) === 1, geometry, loadCount: view.getUint32(O.loadCount, true) };
}

export const MaskKind = { pages: 1, clusters: 2, blobIds: 3 } as const;

/** A mask region: kind, bit count, the bits, CRC32C in the region's last four bytes. */
export function encodeMask(kind: number, bits: number, words: Uint8Array, pages: number): Uint8Array {
  const region = new Uint8Array(pages * PAGE_SIZE);
  const view = viewOf(region);
  view.setUint32(0, kind, true);
  view.setUint32(4, bits, true);
  region.set(words, 8);
  sealPage(region);
  return region;
}

/** The mask's bits, or undefined when the region is not an intact mask of that kind and size. */
export function decodeMask(region: Uint8Array, kind: number, bits: number): Uint8Array | undefined {
  const view = viewOf(region);
  if (view.getUint32(0, true) !== kind || view.getUint32(4, true) !== bits || !pageIntact(region)) return undefined;
  return region.subarray(8, 8 + Math.ceil(bits / 32) * 4);
}
