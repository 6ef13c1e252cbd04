/**
 * Configurations and their encoding inside Membership entries. A change proposes the whole next
 * configuration; `validateChange` keeps it to one voter added or removed at a time (thesis 4.1),
 * with learners free to come and go, because single-server steps need no joint consensus.
 */
import { FastblockError, ErrorCode } from '../errors.js';
import type { Membership, NodeId } from './types.js';

export function isVoter(m: Membership, id: NodeId): boolean {
  return m.voters.includes(id);
}

export function isMember(m: Membership, id: NodeId): boolean {
  return m.voters.includes(id) || m.learners.includes(id);
}

export function sameMembership(a: Membership, b: Membership): boolean {
  const eq = (x: readonly NodeId[], y: readonly NodeId[]): boolean =>
    x.length === y.length && [...x].sort((p, q) => p - q).every((v, i) => v === [...y].sort((p, q) => p - q)[i]);
  return eq(a.voters, b.voters) && eq(a.learners, b.learners);
}

export function normalize(m: Membership): Membership {
  return { voters: [...m.voters].sort((a, b) => a - b), learners: [...m.learners].sort((a, b) => a - b) };
}

/** Throws INVALID_ARGUMENT unless `next` differs from `current` by at most one voter. */
export function validateChange(current: Membership, next: Membership): void {
  const ids = [...next.voters, ...next.learners];
  if (new Set(ids).size !== ids.length || ids.some((id) => !Number.isInteger(id) || id <= 0)) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'membership lists distinct positive node ids in voters or learners, not both', { next });
  }
  if (next.voters.length === 0) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'a membership keeps at least one voter', { next });
  const added = next.voters.filter((id) => !current.voters.includes(id)).length;
  const removed = current.voters.filter((id) => !next.voters.includes(id)).length;
  if (added + removed > 1) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'one voter added or removed per change', { current, next });
  }
}

export function encodeMembership(m: Membership): Uint8Array {
  const out = new Uint8Array(8 + 4 * (m.voters.length + m.learners.length));
  const view = new DataView(out.buffer);
  view.setUint32(0, m.voters.length, true);
  view.setUint32(4, m.learners.length, true);
  let at = 8;
  for (const id of [...m.voters, ...m.learners]) {
    view.setUint32(at, id, true);
    at += 4;
  }
  return out;
}

export function decodeMembership(data: Uint8Array): Membership {
  if (data.byteLength < 8) throw new FastblockError(ErrorCode.CORRUPT, 'membership entry too short', { bytes: data.byteLength });
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const nv = view.getUint32(0, true);
  const nl = view.getUint32(4, true);
  if (data.byteLength !== 8 + 4 * (nv + nl)) {
    throw new FastblockError(ErrorCode.CORRUPT, 'membership entry length mismatch', { bytes: data.byteLength, voters: nv, learners: nl });
  }
  const read = (from: number, n: number): NodeId[] => Array.from({ length: n }, (_, i) => view.getUint32(8 + 4 * (from + i), true));
  return { voters: read(0, nv), learners: read(nv, nl) };
}
