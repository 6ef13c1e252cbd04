/**
 * RaftGroup.replicatedIndex: what a leader may compact without sending any replica a snapshot.
 * It follows the slowest member's durable match, not the commit (a quorum), and only the leader
 * knows it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeId } from '../../kernel/raft/index.js';
import { Cluster } from './harness/cluster.js';

function electLeader(c: Cluster): NodeId {
  assert.ok(c.until(() => c.leader() !== undefined, 2000), 'a leader is elected');
  return c.leader()!;
}

test('the leader reports the slowest replica; followers report nothing', () => {
  const c = new Cluster({ nodes: [1, 2, 3], voters: [1, 2, 3], seed: 21 });
  const leader = electLeader(c);
  const [lagging, other] = ([1, 2, 3] as NodeId[]).filter((id) => id !== leader) as [NodeId, NodeId];
  assert.ok(c.writeFor(100) > 5, 'writes commit');
  c.run(50);
  const raft = c.raft(leader)!;
  assert.is(raft.replicatedIndex(), raft.log.lastIndex(), 'every replica holds the whole log');
  assert.is(c.raft(lagging)!.replicatedIndex(), undefined);
  assert.is(c.raft(other)!.replicatedIndex(), undefined);

  c.isolate(lagging);
  const heldByLagging = c.raft(lagging)!.log.lastIndex();
  assert.ok(c.writeFor(100) > 5, 'writes commit without the isolated follower');
  assert.ok(raft.log.committed > heldByLagging, 'the commit moved past what the isolated follower holds');
  const replicated = raft.replicatedIndex()!;
  assert.ok(replicated <= heldByLagging, `replicated ${replicated} is within what the isolated follower holds (${heldByLagging})`);

  c.recover();
  assert.ok(c.until(() => raft.replicatedIndex() === raft.log.lastIndex(), 2000), 'back to the whole log once it caught up');
});

test.run();
