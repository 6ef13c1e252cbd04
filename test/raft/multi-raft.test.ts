/** MultiRaft: one flush per round for all groups, one node message per destination, lifecycle. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { MemoryStorage, MultiRaft, Role } from '../../kernel/raft/index.js';
import type { NodeId, NodeMessage } from '../../kernel/raft/index.js';
import { Random } from '../sim/random.js';

interface Net {
  nodes: Map<NodeId, MultiRaft>;
  inbox: NodeMessage[];
  flushes: number;
  applied: Map<string, number>;
}

function net(ids: NodeId[], groups: number): Net {
  const random = new Random(3);
  const n: Net = { nodes: new Map(), inbox: [], flushes: 0, applied: new Map() };
  for (const id of ids) {
    const mr = new MultiRaft({
      node: id,
      random: () => random.next(),
      send: (m) => n.inbox.push(m),
      flush: async () => {
        n.flushes++;
      },
      handler: {
        apply: (group, entries) => n.applied.set(`${id}/${group}`, (n.applied.get(`${id}/${group}`) ?? 0) + entries.filter((e) => e.data.byteLength > 0).length),
        restore: () => undefined,
      },
    });
    for (let g = 0; g < groups; g++) mr.createGroup(`1.${g}`, new MemoryStorage({ voters: ids, learners: [] }));
    n.nodes.set(id, mr);
  }
  return n;
}

async function settle(n: Net): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const batch = n.inbox;
    n.inbox = [];
    for (const m of batch) n.nodes.get(m.to)!.receive(m);
    await Promise.all([...n.nodes.values()].map((mr) => mr.process()));
    if (n.inbox.length === 0 && ![...n.nodes.values()].some((mr) => mr.hasReady())) return;
  }
  throw new Error('did not settle');
}

test('a round of 50 groups is one flush and one node message per destination', async () => {
  const n = net([1, 2, 3], 50);
  for (let g = 0; g < 50; g++) n.nodes.get(1)!.group(`1.${g}`)!.campaign();
  await settle(n);
  for (let g = 0; g < 50; g++) assert.is(n.nodes.get(1)!.group(`1.${g}`)!.role, Role.Leader);
  const flushes = n.flushes;
  const leader = n.nodes.get(1)!;
  for (let g = 0; g < 50; g++) leader.group(`1.${g}`)!.propose(new Uint8Array([g]));
  await leader.process();
  assert.is(n.flushes - flushes, 1, 'one flush for the 50 groups the round wrote');
  const appends = n.inbox.filter((m) => m.from === 1);
  assert.equal(appends.map((m) => m.to).sort(), [2, 3], 'one node message per destination');
  assert.is(appends[0]!.messages.length, 50, 'carrying every group\'s append');
  await settle(n);
  // Followers learn the commit index from the next append or heartbeat round.
  for (const mr of n.nodes.values()) mr.tick();
  await settle(n);
  for (const id of [1, 2, 3]) for (let g = 0; g < 50; g++) assert.is(n.applied.get(`${id}/1.${g}`), 1);
});

test('concurrent process() calls join one loop', async () => {
  const n = net([1], 3);
  const mr = n.nodes.get(1)!;
  for (let g = 0; g < 3; g++) mr.group(`1.${g}`)!.campaign();
  await Promise.all([mr.process(), mr.process(), mr.process()]);
  for (let g = 0; g < 3; g++) assert.is(mr.group(`1.${g}`)!.role, Role.Leader);
  assert.not.ok(mr.hasReady());
});

test('groups come and go at runtime; duplicates and unknown groups are refused', async () => {
  const n = net([1], 0);
  const mr = n.nodes.get(1)!;
  mr.createGroup('2.0', new MemoryStorage({ voters: [1], learners: [] }));
  assert.throws(() => mr.createGroup('2.0', new MemoryStorage()), (e: unknown) => isFastblockError(e, ErrorCode.ALREADY_EXISTS));
  mr.group('2.0')!.campaign();
  await mr.process();
  mr.group('2.0')!.propose(new Uint8Array([1]));
  mr.destroyGroup('2.0');
  await mr.process();
  assert.is(mr.group('2.0'), undefined);
  assert.throws(() => mr.destroyGroup('2.0'), (e: unknown) => isFastblockError(e, ErrorCode.NOT_FOUND));
  assert.is(mr.size, 0);
});

test('messages addressed to another node are dropped', async () => {
  const n = net([1, 2, 3], 1);
  n.nodes.get(2)!.receive({ from: 1, to: 3, messages: [], beats: [{ group: '1.0', term: 9, commit: 0, seq: 1 }], beatResponses: [] });
  assert.is(n.nodes.get(2)!.group('1.0')!.term, 0);
});

test('a single voter applies what its flushed append committed without waiting for the next round\'s flush', async () => {
  const flushes: (() => void)[] = [];
  const applied: number[] = [];
  const mr = new MultiRaft({
    node: 1,
    random: () => 0.5,
    send: () => undefined,
    flush: () => new Promise<void>((resolve) => flushes.push(resolve)),
    handler: { apply: (_group, entries) => applied.push(...entries.filter((e) => e.data.byteLength > 0).map((e) => e.data[0]!)), restore: () => undefined },
  });
  mr.createGroup('1.0', new MemoryStorage({ voters: [1], learners: [] }));
  const group = mr.group('1.0')!;
  group.campaign();
  const elected = mr.process();
  while (group.role !== Role.Leader || mr.hasReady() || flushes.length > 0) {
    flushes.shift()?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
  await elected;
  group.propose(new Uint8Array([1]));
  const loop = mr.process();
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(flushes.length, 1, 'entry 1 is being flushed');
  group.propose(new Uint8Array([2]));
  flushes.shift()!();
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(flushes.length, 1, 'entry 2 is being flushed');
  assert.equal(applied, [1], 'entry 1, committed by the first flush, is applied while the second runs');
  flushes.shift()!();
  await new Promise((resolve) => setImmediate(resolve));
  flushes.shift()?.();
  await loop;
  assert.equal(applied, [1, 2]);
});

test('a leader of three applies what a quorum acknowledged while its flush of newer entries runs', async () => {
  const n = net([2, 3], 0);
  const flushes: (() => void)[] = [];
  const applied: number[] = [];
  const leader = new MultiRaft({
    node: 1,
    random: () => 0.5,
    send: (m) => n.inbox.push(m),
    flush: () => new Promise<void>((resolve) => flushes.push(resolve)),
    handler: { apply: (_group, entries) => applied.push(...entries.filter((e) => e.data.byteLength > 0).map((e) => e.data[0]!)), restore: () => undefined },
  });
  n.nodes.set(1, leader);
  for (const mr of n.nodes.values()) mr.createGroup('1.0', new MemoryStorage({ voters: [1, 2, 3], learners: [] }));
  const group = leader.group('1.0')!;
  /** Delivers messages and releases the leader's flushes until nothing moves. */
  const run = async (): Promise<void> => {
    for (let i = 0; i < 100; i++) {
      flushes.shift()?.();
      const batch = n.inbox;
      n.inbox = [];
      for (const m of batch) n.nodes.get(m.to)!.receive(m);
      for (const mr of n.nodes.values()) void mr.process();
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  group.campaign();
  await run();
  assert.is(group.role, Role.Leader);
  assert.is(flushes.length, 0);

  group.propose(new Uint8Array([1]));
  void leader.process();
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(flushes.length, 1, 'entry 1 is being flushed');
  flushes.shift()!();
  await new Promise((resolve) => setImmediate(resolve));
  // The followers persist entry 1 and acknowledge it; the leader hears it between rounds.
  for (let i = 0; i < 3; i++) {
    const batch = n.inbox;
    n.inbox = [];
    for (const m of batch) n.nodes.get(m.to)!.receive(m);
    for (const id of [2, 3]) await n.nodes.get(id)!.process();
  }
  assert.equal(applied, [], 'nothing committed yet');
  group.propose(new Uint8Array([2]));
  assert.ok(group.log.committed >= 2, 'entry 1 committed by the acknowledgements');
  void leader.process();
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(flushes.length, 1, 'entry 2 is being flushed');
  assert.equal(applied, [1], 'entry 1 is applied while entry 2 is flushed');
  await run();
  assert.equal(applied, [1, 2]);
});

test.run();
