/**
 * An object of an image with what every request for it needs, computed once: its name, the
 * placement hash of the name, and the name as the request header encodes it. Building the name,
 * encoding it to UTF-8 and hashing it per I/O cost more than the rest of routing together.
 *
 * An image keeps the refs of the objects it touched lately; the table is bounded (a 4 MiB object
 * each, it covers 16 GiB of hot data) and simply starts over when full: a miss costs what every
 * I/O used to cost, and no I/O holds on to the table itself.
 */
import { encodeObjectField } from './data-protocol.js';
import { hashObjectName } from './object-hash.js';
import { objectName } from './striping.js';

export interface ObjectRef {
  readonly name: string;
  /** murmur3 of the name (client/object-hash.ts): the PG is this modulo the pool's pg_num. */
  readonly hash: number;
  /** The name as DataRequest field 4. */
  readonly field: Uint8Array;
}

export function objectRef(name: string): ObjectRef {
  return { name, hash: hashObjectName(name), field: encodeObjectField(name) };
}

const MAX_REFS = 4096;

export class ObjectRefs {
  private readonly refs = new Map<number, ObjectRef>();

  constructor(private readonly imageId: string) {}

  of(objectIndex: number): ObjectRef {
    let ref = this.refs.get(objectIndex);
    if (ref === undefined) {
      if (this.refs.size >= MAX_REFS) this.refs.clear();
      ref = objectRef(objectName(this.imageId, objectIndex));
      this.refs.set(objectIndex, ref);
    }
    return ref;
  }
}
