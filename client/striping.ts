/**
 * Striping: a byte range of an image becomes a list of extents, each inside one object.
 * Object `i` of image `id` holds image bytes [i * objectSize, (i + 1) * objectSize) and is named
 * "<id>.<i in 16 hex digits>", so names sort in image order.
 */
import { assert } from '../kernel/errors.js';

export interface ObjectExtent {
  readonly objectIndex: number;
  /** Offset inside the object. */
  readonly offset: number;
  readonly length: number;
  /** Offset of this extent inside the caller's range. */
  readonly rangeOffset: number;
}

export function objectName(imageId: string, objectIndex: number): string {
  return `${imageId}.${objectIndex.toString(16).padStart(16, '0')}`;
}

export function mapRange(offset: number, length: number, objectSize: number): ObjectExtent[] {
  assert(objectSize > 0 && Number.isSafeInteger(objectSize), 'object size is a positive integer');
  const extents: ObjectExtent[] = [];
  let done = 0;
  while (done < length) {
    const position = offset + done;
    const objectIndex = Math.floor(position / objectSize);
    const inObject = position - objectIndex * objectSize;
    const n = Math.min(objectSize - inObject, length - done);
    extents.push({ objectIndex, offset: inObject, length: n, rangeOffset: done });
    done += n;
  }
  return extents;
}

/** The part [from, from + length) of a scatter list, as views (no copy). */
export function sliceScatter(data: readonly Uint8Array[], from: number, length: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = from;
  let left = length;
  for (const piece of data) {
    if (left === 0) break;
    if (skip >= piece.length) {
      skip -= piece.length;
      continue;
    }
    const n = Math.min(piece.length - skip, left);
    out.push(piece.subarray(skip, skip + n));
    skip = 0;
    left -= n;
  }
  assert(left === 0, 'scatter list shorter than the range');
  return out;
}
