/**
 * The scenario matrix of Curve's raft integration tests: {election, replication, membership
 * change, InstallSnapshot, leader transfer} x {the leader, one follower, two followers} x
 * {crash, hang, restart}. Each asserts availability while a majority remains (a write commits
 * within a bound), unavailability without one (nothing commits), and after every node is back,
 * convergence with no acknowledged write lost.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeMembership } from '../../kernel/raft/index.js';
import type { NodeId } from '../../kernel/raft/index.js';
import { Cluster } from './harness/cluster.js';

type Phase = 'election' | 'replication' | 'membership' | 'snapshot' | 'transfer';
type Target = 'leader' | 'one follower' | 'two followers';
type Fault = 'crash' | 'hang' | 'restart';

const PHASE_TEXT: Record<Phase, string> = {
  election: 'during an election',
  replication: 'under a write load',
  membership: 'while a fourth node is added and promoted',
  snapshot: 'while a lagging follower installs a snapshot',
  transfer: 'during a leadership transfer',
};

const FAULT_TEXT: Record<Fault, [string, string]> = {
  crash: ['crashes', 'crash'],
  hang: ['hangs', 'hang'],
  restart: ['restarts', 'restart'],
};

function scenarioName(phase: Phase, target: Target, fault: Fault): string {
  const who = target === 'two followers' ? `two followers ${FAULT_TEXT[fault][1]}` : `${target === 'leader' ? 'the leader' : 'one follower'} ${FAULT_TEXT[fault][0]}`;
  const majority = target !== 'two followers' || fault === 'restart';
  const outcome = majority ? 'writes go on and nothing acknowledged is lost' : 'writes stop until they return, then go on with nothing lost';
  return `${PHASE_TEXT[phase]}, ${who}: ${outcome}`;
}

function inject(c: Cluster, ids: NodeId[], fault: Fault): void {
  for (const id of ids) {
    if (fault === 'hang') c.hang(id);
    else c.crash(id);
  }
  if (fault === 'restart') {
    c.run(20);
    for (const id of ids) c.restart(id);
  }
}

function electLeader(c: Cluster): NodeId {
  assert.ok(c.until(() => c.leader() !== undefined, 3000), 'a first leader is elected');
  assert.ok(c.writeCommits(1000), 'the first leader commits');
  return c.leader()!;
}

function followersOf(c: Cluster, leader: NodeId, voters: NodeId[]): NodeId[] {
  return voters.filter((id) => id !== leader);
}

function targets(target: Target, leader: NodeId, followers: NodeId[]): NodeId[] {
  if (target === 'leader') return [leader];
  if (target === 'one follower') return [followers[0]!];
  return followers.slice(0, 2);
}

/** While the fault lasts: writes commit iff a majority remains. */
function checkAvailability(c: Cluster, majority: boolean, faultMs = 1500): void {
  if (majority) {
    assert.ok(c.writeCommits(faultMs), 'a write commits while a majority remains');
  } else {
    c.run(50); // writes already replicated to a quorum may still be acknowledged
    const during = c.writeFor(faultMs, 10);
    assert.is(during, 0, 'nothing commits without a majority');
  }
}

function checkRecovery(c: Cluster): void {
  c.recover();
  assert.ok(c.writeCommits(4000), 'writes commit once every node is back');
  assert.ok(c.until(() => c.converged(), 4000), 'every member catches up');
  assert.equal(c.lostWrites(), [], 'no acknowledged write is lost');
}

const scenarios: Record<Phase, (target: Target, fault: Fault) => void> = {
  election(target, fault) {
    const c = new Cluster({ nodes: [1, 2, 3], voters: [1, 2, 3], seed: 11 });
    // Past the quiet period of fresh nodes, node 1 campaigns; the fault hits while votes are in flight.
    c.run(105);
    c.raft(1)!.campaign();
    c.run(2);
    const majority = target !== 'two followers' || fault === 'restart';
    inject(c, targets(target, 1, [2, 3]), fault);
    if (majority) {
      assert.ok(c.until(() => c.leader() !== undefined, 3000), 'a leader is elected among the majority');
    }
    checkAvailability(c, majority);
    checkRecovery(c);
  },

  replication(target, fault) {
    const c = new Cluster({ nodes: [1, 2, 3], voters: [1, 2, 3], seed: 12 });
    const leader = electLeader(c);
    assert.ok(c.writeFor(300) > 10, 'writes commit before the fault');
    const majority = target !== 'two followers' || fault === 'restart';
    inject(c, targets(target, leader, followersOf(c, leader, [1, 2, 3])), fault);
    checkAvailability(c, majority);
    checkRecovery(c);
  },

  membership(target, fault) {
    const c = new Cluster({ nodes: [1, 2, 3, 4], voters: [1, 2, 3], seed: 13 });
    const leader = electLeader(c);
    c.writeFor(100);
    c.raft(leader)!.proposeMembership({ voters: [1, 2, 3], learners: [4] });
    c.run(10);
    const majority = target !== 'two followers' || fault === 'restart';
    inject(c, targets(target, leader, followersOf(c, leader, [1, 2, 3])), fault);
    checkAvailability(c, majority);
    c.recover();
    // Promote the learner once caught up, from whichever node leads now.
    const promoted = c.until(() => {
      const l = c.leader();
      if (l === undefined) return false;
      const raft = c.raft(l)!;
      if (raft.membership.voters.includes(4)) return c.converged();
      if (c.now % 50 === 0) {
        try {
          if (!raft.membership.learners.includes(4)) raft.proposeMembership({ voters: [1, 2, 3], learners: [4] });
          else if ((raft.status().progress.get(4)?.match ?? 0) >= raft.log.committed) raft.proposeMembership({ voters: [1, 2, 3, 4], learners: [] });
        } catch {
          // A change in flight or a fresh leader: try again later.
        }
      }
      return false;
    }, 6000);
    assert.ok(promoted, 'node 4 ends up a voter and caught up');
    checkRecovery(c);
    assert.ok(encodeMembership(c.raft(c.leader()!)!.membership).byteLength > 0);
  },

  snapshot(target, fault) {
    const c = new Cluster({ nodes: [1, 2, 3], voters: [1, 2, 3], seed: 14, snapshotEvery: 20, chunkBytes: 64 });
    const leader = electLeader(c);
    const [lagging, other] = followersOf(c, leader, [1, 2, 3]) as [NodeId, NodeId];
    c.isolate(lagging);
    assert.ok(c.writeFor(400) > 20, 'writes commit without the lagging follower');
    assert.ok(c.raft(leader)!.log.firstIndex() > c.raft(lagging)!.log.lastIndex() + 1, 'the leader trimmed past the lagging follower');
    c.recover(); // heals the network: the leader starts streaming the snapshot
    assert.ok(c.until(() => c.raft(leader)!.status().progress.get(lagging)?.state === 'snapshot', 500), 'a snapshot stream starts');
    c.run(3);
    const majority = target !== 'two followers' || fault === 'restart';
    const hit = target === 'leader' ? [leader] : target === 'one follower' ? [lagging] : [lagging, other];
    inject(c, hit, fault);
    checkAvailability(c, majority);
    checkRecovery(c);
    assert.ok(c.snapshotsInstalled >= 1, 'the lagging follower installed a snapshot');
  },

  transfer(target, fault) {
    const c = new Cluster({ nodes: [1, 2, 3], voters: [1, 2, 3], seed: 15 });
    const leader = electLeader(c);
    c.writeFor(100);
    const [to, other] = followersOf(c, leader, [1, 2, 3]) as [NodeId, NodeId];
    c.raft(leader)!.transferLeader(to);
    c.run(1);
    const majority = target !== 'two followers' || fault === 'restart';
    const hit = target === 'leader' ? [leader] : target === 'one follower' ? [to] : [to, other];
    inject(c, hit, fault);
    checkAvailability(c, majority);
    checkRecovery(c);
  },
};

for (const phase of Object.keys(scenarios) as Phase[]) {
  for (const target of ['leader', 'one follower', 'two followers'] as Target[]) {
    for (const fault of ['crash', 'hang', 'restart'] as Fault[]) {
      test(scenarioName(phase, target, fault), () => scenarios[phase](target, fault));
    }
  }
}

test.run();
