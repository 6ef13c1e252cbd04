/**
 * Lease reads against a leader that is cut off: it may answer reads from its lease only until
 * the rest of the cluster can have elected a new leader. Checked over many election timings.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Role } from '../../kernel/raft/index.js';
import { Cluster } from './harness/cluster.js';

test('an isolated leader stops serving lease reads before a new leader can exist', () => {
  let leaseReadsAfterIsolation = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const c = new Cluster({ nodes: [1, 2, 3], voters: [1, 2, 3], seed });
    assert.ok(c.until(() => c.leader() !== undefined, 3000));
    assert.ok(c.writeCommits(1000));
    const old = c.leader()!;
    c.run(seed % 25); // isolate at a different point of the heartbeat cycle each time
    c.isolate(old);
    const isolatedAt = c.now;
    let newLeaderAt = Infinity;
    let ctx = 0;
    for (let t = 0; t < 1500; t++) {
      const raft = c.raft(old)!;
      if (raft.role === Role.Leader) {
        try {
          raft.readIndex(++ctx);
        } catch {
          // Not the leader any more.
        }
      }
      c.step();
      if (newLeaderAt === Infinity) {
        for (const id of [1, 2, 3]) {
          if (id !== old && c.raft(id)!.role === Role.Leader) newLeaderAt = c.now;
        }
      }
    }
    assert.ok(newLeaderAt < Infinity, `seed ${seed}: the majority elects a new leader`);
    // Reads released at once (lease) by the old leader after the isolation.
    const served = c.readsReleased.filter((r) => r.node === old && r.at > isolatedAt);
    leaseReadsAfterIsolation += served.length;
    for (const r of served) assert.ok(r.at < newLeaderAt, `seed ${seed}: lease read at ${r.at} after a new leader at ${newLeaderAt}`);
  }
  assert.ok(leaseReadsAfterIsolation > 0, 'the isolated leader did serve lease reads while its lease held');
});

test.run();
