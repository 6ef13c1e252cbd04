/**
 * A replica that knows no configuration (waiting to be added, or removed and back empty) must not
 * vote: its empty log makes every candidate look up to date. Found by the simulator (seed 495
 * once commit updates rode on the next append): node 1, partitioned through two membership
 * changes, still held {1,2,3}; node 2 had been removed by {1,3,5} and came back empty with its
 * tombstone (term 2); its pre-vote and vote made node 1 leader of term 3 beside node 3.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryStorage, MessageType, RaftGroup, message } from '../../kernel/raft/index.js';
import type { Membership, MessageType as MessageTypeValue } from '../../kernel/raft/index.js';

function replica(membership: Membership): RaftGroup {
  const storage = new MemoryStorage(membership);
  // The tombstone of a replica that voted for itself in term 2 before it was removed.
  storage.setHardState({ term: 2, vote: 2, commit: 0 });
  return new RaftGroup({ id: 2, group: '1.0', storage, random: () => 0.5 });
}

function answer(group: RaftGroup, type: MessageTypeValue): { type: MessageTypeValue; reject: boolean } {
  // A stale candidate: its log (6 entries of term 2) beats an empty one.
  group.step(message({ type, group: '1.0', from: 1, to: 2, term: 3, index: 6, logTerm: 2 }));
  const rd = group.ready();
  group.advance(rd);
  const reply = rd.messagesAfterPersist.find((m) => m.to === 1);
  assert.ok(reply, 'the candidate gets an answer');
  return { type: reply.type, reject: reply.reject };
}

test('a replica without a configuration refuses pre-votes and votes', () => {
  assert.equal(answer(replica({ voters: [], learners: [] }), MessageType.PreVote), { type: MessageType.PreVoteResp, reject: true });
  assert.equal(answer(replica({ voters: [], learners: [] }), MessageType.Vote), { type: MessageType.VoteResp, reject: true });
});

test('a learner that holds a configuration still votes (it may have been promoted in one it has not seen)', () => {
  assert.equal(answer(replica({ voters: [1, 3], learners: [2] }), MessageType.PreVote), { type: MessageType.PreVoteResp, reject: false });
  assert.equal(answer(replica({ voters: [1, 3], learners: [2] }), MessageType.Vote), { type: MessageType.VoteResp, reject: false });
});

test.run();
