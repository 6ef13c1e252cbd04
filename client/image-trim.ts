/**
 * Releases the objects behind a byte range of an image: what `image rm` does before it drops the
 * image from the map, and what a shrink does to the end it cut off (so that growing the image
 * again shows zeroes, not the old bytes).
 *
 * Discards go to the objects directly rather than through Image, whose range check stops at the
 * image's current size: after a shrink the tail is already outside it. A discard covering all of
 * an object releases the object on every replica (the object store's rule); one covering part of
 * it unmaps that part. An object never written costs a raft entry that changes nothing; one whose PG
 * has no replica in the map (a pool no OSD ever served) holds nothing and is skipped.
 */
import type { ImageInfo } from '../kernel/contracts/cluster-map.js';
import { assert } from '../kernel/errors.js';
import type { ClusterClient } from './cluster-client.js';
import { DataOp, MAX_DATA_LENGTH } from './data-protocol.js';
import { objectRef } from './object-ref.js';
import { objectName } from './striping.js';

export interface TrimOptions {
  /** Object discards in flight. */
  readonly concurrency?: number;
  /** Called after each object with the objects done and the total. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface TrimResult {
  readonly objects: number;
}

/** The objects that image bytes [from, to) touch. */
export function objectsInRange(image: ImageInfo, from: number, to: number): number {
  return Math.ceil(to / image.objectSizeBytes) - Math.floor(from / image.objectSizeBytes);
}

/** Discards image bytes [from, to): every object the range touches, in parallel. */
export async function trimImage(client: ClusterClient, image: ImageInfo, from: number, to: number, options: TrimOptions = {}): Promise<TrimResult> {
  assert(Number.isSafeInteger(from) && Number.isSafeInteger(to) && from >= 0 && to >= from, 'trim range is ordered and non-negative');
  const objectSize = image.objectSizeBytes;
  const first = Math.floor(from / objectSize);
  const total = objectsInRange(image, from, to);
  const end = first + total;
  const concurrency = Math.max(1, options.concurrency ?? 32);
  let next = first;
  let done = 0;
  const map = client.maps.current();
  client.router.setMap(map);
  const served = new Set(map.pgs.filter((pg) => pg.pool === image.pool && pg.replicas.length > 0).map((pg) => pg.index));

  const trimObject = async (index: number): Promise<void> => {
    const start = Math.max(from, index * objectSize) - index * objectSize;
    const stop = Math.min(to, (index + 1) * objectSize) - index * objectSize;
    const object = objectRef(objectName(image.id, index));
    if (!served.has(client.router.pgOfHash(image.pool, object.hash))) return;
    // An object larger than one request is discarded piece by piece: its clusters are released,
    // its few bytes of metadata stay (the store drops an object only on one discard of all of it).
    for (let at = start; at < stop; at += MAX_DATA_LENGTH) {
      await client.io.run({ op: DataOp.DISCARD, pool: image.pool, object, offset: at, length: Math.min(MAX_DATA_LENGTH, stop - at) });
    }
  };

  const worker = async (): Promise<void> => {
    while (next < end) {
      const index = next++;
      await trimObject(index);
      done++;
      options.onProgress?.(done, total);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return { objects: total };
}
