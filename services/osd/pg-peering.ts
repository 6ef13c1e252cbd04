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

export type PeeringVerdict = 'new' | 'exists' | 'unknown';

export interface PgQueryAnswer {
  readonly hasState: boolean;
  readonly leader: number | undefined;
  readonly term: number;
}

export function encodePgQuery(pg: string): Uint8Array {
  return QueryType.encode({ pg }).finish();
}

export function decodePgQuery(bytes: Uint8Array): string {
  return String((QueryType.toObject(QueryType.decode(bytes), { defaults: true }) as { pg: string }).pg);
}

export function encodePgQueryReply(answer: PgQueryAnswer): Uint8Array {
  return ReplyType.encode({ hasState: answer.hasState, leader: answer.leader === undefined ? 0 : answer.leader + 1, term: answer.term }).finish();
}

export async function peerPg(pg: string, peers: readonly TransportConnection[], timeoutMs = 2000): Promise<PeeringVerdict> {
  const answers = await Promise.allSettled(
    peers.map(async (peer) => {
      const reply = await peer.request(DATA_METHOD_PG_QUERY, encodePgQuery(pg), undefined, { timeoutMs });
      return (ReplyType.toObject(ReplyType.decode(reply.header), { defaults: true }) as { hasState: boolean }).hasState;
    }),
  );
  if (answers.some((a) => a.status === 'fulfilled' && a.value)) return 'exists';
  return answers.every((a) => a.status === 'fulfilled') ? 'new' : 'unknown';
}
