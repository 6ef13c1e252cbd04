/**
 * Blob metadata as chained md pages. A blob's md is its cluster map (extent runs; cluster 0 marks
 * an unallocated run, since cluster 0 always holds metadata) and its xattrs. It is written as a
 * chain: the head page sits at md page index == blob id, every page names the next one, and all
 * pages of one version share a generation, so a head never adopts a page of another version.
 *
 *   0  u32 blob id          8  u32 generation     16  descriptors ...
 *   4  u32 sequence (head 0)  12 u32 next page (NO_PAGE: last)          4092 u32 CRC32C
 *
 * A descriptor is u8 type, u8 0, u16 payload length, payload. Type 0 ends a page.
 *   EXTENT_RLE (1): n x (u32 first cluster, u32 run length)
 *   XATTR (2):      u16 name length, u16 value length, name (UTF-8), value
 */
import { FastblockError, ErrorCode } from '../../../kernel/errors.js';
import { NO_PAGE, PAGE_SIZE, pageIntact, sealPage, viewOf } from './layout.js';

const HEADER = 16;
const BODY_END = PAGE_SIZE - 4;
const DESCRIPTOR_HEADER = 4;
const EXTENT_RLE = 1;
const XATTR = 2;
const MAX_XATTR_BYTES = BODY_END - HEADER - DESCRIPTOR_HEADER - 4;

export interface BlobMd {
  /** Cluster per blob cluster index; 0: not allocated (reads as zeroes). */
  readonly clusters: ArrayLike<number>;
  readonly clusterCount: number;
  readonly xattrs: ReadonlyMap<string, Uint8Array>;
}

interface Descriptor {
  readonly type: number;
  readonly payload: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function checkXattr(name: string, value: Uint8Array): void {
  const bytes = encoder.encode(name).length + value.length;
  if (name.length === 0 || bytes > MAX_XATTR_BYTES) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'xattr name empty or name + value larger than an md page holds', { name, bytes, max: MAX_XATTR_BYTES });
  }
}

function xattrDescriptor(name: string, value: Uint8Array): Descriptor {
  const nameBytes = encoder.encode(name);
  const payload = new Uint8Array(4 + nameBytes.length + value.length);
  const view = viewOf(payload);
  view.setUint16(0, nameBytes.length, true);
  view.setUint16(2, value.length, true);
  payload.set(nameBytes, 4);
  payload.set(value, 4 + nameBytes.length);
  return { type: XATTR, payload };
}

function extentRuns(md: BlobMd): number[] {
  const runs: number[] = [];
  for (let i = 0; i < md.clusterCount; ) {
    const first = md.clusters[i];
    let n = 1;
    while (i + n < md.clusterCount && (first === 0 ? md.clusters[i + n] === 0 : md.clusters[i + n] === first + n)) n++;
    runs.push(first, n);
    i += n;
  }
  return runs;
}

/** Lays descriptors out on pages; returns each page's descriptor list. */
function paginate(md: BlobMd): Descriptor[][] {
  const pages: Descriptor[][] = [[]];
  let free = BODY_END - HEADER;
  const place = (d: Descriptor): void => {
    const bytes = DESCRIPTOR_HEADER + d.payload.length;
    if (bytes > free) {
      pages.push([]);
      free = BODY_END - HEADER;
    }
    pages[pages.length - 1].push(d);
    free -= bytes;
  };
  for (const [name, value] of md.xattrs) place(xattrDescriptor(name, value));
  const runs = extentRuns(md);
  for (let r = 0; r < runs.length; ) {
    let fit = Math.floor((free - DESCRIPTOR_HEADER) / 8);
    if (fit <= 0) {
      pages.push([]);
      free = BODY_END - HEADER;
      fit = Math.floor((free - DESCRIPTOR_HEADER) / 8);
    }
    const n = Math.min(fit, (runs.length - r) / 2);
    const payload = new Uint8Array(n * 8);
    const view = viewOf(payload);
    for (let k = 0; k < n; k++) {
      view.setUint32(k * 8, runs[r + 2 * k], true);
      view.setUint32(k * 8 + 4, runs[r + 2 * k + 1], true);
    }
    place({ type: EXTENT_RLE, payload });
    r += 2 * n;
  }
  return pages;
}

export function pagesNeeded(md: BlobMd): number {
  return paginate(md).length;
}

/**
 * Encodes `md` onto the given md page indexes (head first; exactly pagesNeeded(md) of them) into
 * `out`, one PAGE_SIZE slice per page.
 */
export function encodeChain(blobId: number, generation: number, md: BlobMd, pageIndexes: readonly number[], out: Uint8Array): void {
  const pages = paginate(md);
  if (pages.length !== pageIndexes.length) throw new RangeError(`md needs ${pages.length} pages, given ${pageIndexes.length}`);
  out.fill(0, 0, pages.length * PAGE_SIZE);
  pages.forEach((descriptors, seq) => {
    const page = out.subarray(seq * PAGE_SIZE, (seq + 1) * PAGE_SIZE);
    const view = viewOf(page);
    view.setUint32(0, blobId, true);
    view.setUint32(4, seq, true);
    view.setUint32(8, generation, true);
    view.setUint32(12, seq + 1 < pageIndexes.length ? pageIndexes[seq + 1] : NO_PAGE, true);
    let at = HEADER;
    for (const d of descriptors) {
      view.setUint8(at, d.type);
      view.setUint16(at + 2, d.payload.length, true);
      page.set(d.payload, at + DESCRIPTOR_HEADER);
      at += DESCRIPTOR_HEADER + d.payload.length;
    }
    sealPage(page);
  });
}

export interface PageHeader {
  readonly blobId: number;
  readonly sequence: number;
  readonly generation: number;
  readonly next: number;
}

/** The header of an intact md page, or undefined (bad CRC, or never written). */
export function readPageHeader(page: Uint8Array): PageHeader | undefined {
  if (!pageIntact(page)) return undefined;
  const view = viewOf(page);
  return { blobId: view.getUint32(0, true), sequence: view.getUint32(4, true), generation: view.getUint32(8, true), next: view.getUint32(12, true) };
}

export function isBlank(page: Uint8Array): boolean {
  for (let i = 0; i < page.length; i += 4) if (page[i] | page[i + 1] | page[i + 2] | page[i + 3]) return false;
  return true;
}

/** Accumulates decoded pages of one chain into a BlobMd. */
export class ChainDecoder {
  readonly clusters: number[] = [];
  readonly xattrs = new Map<string, Uint8Array>();

  /** Adds one page's descriptors; throws CORRUPT (with the blob id) on a malformed one. */
  add(blobId: number, page: Uint8Array): void {
    const view = viewOf(page);
    for (let at = HEADER; at + DESCRIPTOR_HEADER <= BODY_END; ) {
      const type = view.getUint8(at);
      if (type === 0) break;
      const length = view.getUint16(at + 2, true);
      const start = at + DESCRIPTOR_HEADER;
      if (start + length > BODY_END) throw corrupt(blobId, 'descriptor overruns its page');
      if (type === EXTENT_RLE) {
        if (length % 8 !== 0) throw corrupt(blobId, 'extent descriptor length');
        for (let k = start; k < start + length; k += 8) {
          const first = view.getUint32(k, true);
          const n = view.getUint32(k + 4, true);
          if (n === 0 || this.clusters.length + n > 0xffffffff) throw corrupt(blobId, 'extent run length');
          for (let c = 0; c < n; c++) this.clusters.push(first === 0 ? 0 : first + c);
        }
      } else if (type === XATTR) {
        const nameLength = view.getUint16(start, true);
        const valueLength = view.getUint16(start + 2, true);
        if (4 + nameLength + valueLength !== length) throw corrupt(blobId, 'xattr descriptor length');
        let name: string;
        try {
          name = decoder.decode(page.subarray(start + 4, start + 4 + nameLength));
        } catch {
          throw corrupt(blobId, 'xattr name is not UTF-8');
        }
        this.xattrs.set(name, page.slice(start + 4 + nameLength, start + length));
      } else {
        throw corrupt(blobId, `unknown descriptor type ${type}`);
      }
      at = start + length;
    }
  }
}

export function corrupt(blobId: number, reason: string, context: Record<string, unknown> = {}): FastblockError {
  return new FastblockError(ErrorCode.CORRUPT, `metadata of blob ${blobId} is damaged: ${reason}`, { blobId, reason, ...context });
}
