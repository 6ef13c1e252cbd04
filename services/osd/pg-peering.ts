/**
 * Peering of a PG replica that has no local state: is this PG new (every replica of its mapping
 * says it holds nothing, so all start it with the mapping as the first membership), or does it
 * exist elsewhere (then this replica waits, empty, for the leader to add it as a learner)?
 * A replica that does not answer leaves the question open: never bootstrap over a PG that an
 * unreachable replica may hold.
 */
import type { TransportConnection } from '../../kernel/contracts/transport.js';
import { DATA_METHOD_PG_QUERY, dataProto } from '../../client/data-protocol.js';

const QueryType = dataProto.lookupType('fastblock.data.PgQuery');
const ReplyType = dataProto.lookupType('fastblock.data.PgQueryReply');

export type PeeringVerdict =
  | { readonly kind: 'new' }
  /** A peer created the PG with us among its voters: start with the same configuration. */
  | { readonly kind: 'created'; readonly voters: readonly number[] }
  | { readonly kind: 'exists' }
  | { readonly kind: 'unknown' };

export interface PgQueryAnswer {
  readonly hasState: boolean;
  readonly leader: number | undefined;
  readonly term: number;
  readonly voters: readonly number[];
}

export function encodePgQuery(pg: string): Uint8Array {
  return QueryType.encode({ pg }).finish();
}

export function decodePgQuery(bytes: Uint8Array): string {
  return String((QueryType.toObject(QueryType.decode(bytes), { defaults: true }) as { pg: string }).pg);
}

export function encodePgQueryReply(answer: PgQueryAnswer): Uint8Array {
  return ReplyType.encode({ hasState: answer.hasState, leader: answer.leader === undefined ? 0 : answer.leader + 1, term: answer.term, voters: answer.voters }).finish();
}

/** `self` is our raft node id. */
export async function peerPg(pg: string, self: number, peers: readonly TransportConnection[], timeoutMs = 2000): Promise<PeeringVerdict> {
  const answers = await Promise.allSettled(
    peers.map(async (peer) => {
      const reply = await peer.request(DATA_METHOD_PG_QUERY, encodePgQuery(pg), undefined, { timeoutMs });
      return ReplyType.toObject(ReplyType.decode(reply.header), { defaults: true, arrays: true }) as { hasState: boolean; voters: number[] };
    }),
  );
  const held = answers.flatMap((a) => (a.status === 'fulfilled' && a.value.hasState ? [a.value] : []));
  const creator = held.find((a) => a.voters.includes(self));
  if (creator) return { kind: 'created', voters: creator.voters };
  if (held.length > 0) return { kind: 'exists' };
  return answers.every((a) => a.status === 'fulfilled') ? { kind: 'new' } : { kind: 'unknown' };
}

/**
 * For a replica the map no longer lists: do the PG's current replicas still count us as a voter?
 * false once one that holds the PG has a configuration without us (we were removed while away);
 * undefined when none of them answered.
 */
export async function stillMember(pg: string, self: number, peers: readonly TransportConnection[], timeoutMs = 2000): Promise<boolean | undefined> {
  const answers = await Promise.allSettled(
    peers.map(async (peer) => {
      const reply = await peer.request(DATA_METHOD_PG_QUERY, encodePgQuery(pg), undefined, { timeoutMs });
      return ReplyType.toObject(ReplyType.decode(reply.header), { defaults: true, arrays: true }) as { hasState: boolean; voters: number[] };
    }),
  );
  const held = answers.flatMap((a) => (a.status === 'fulfilled' && a.value.hasState && a.value.voters.length > 0 ? [a.value] : []));
  if (held.length === 0) return undefined;
  return !held.some((a) => !a.voters.includes(self));
}
