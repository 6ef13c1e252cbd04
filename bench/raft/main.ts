/**
 * bench/raft: the raft core in one process, 3 replicas over an in-memory transport and storage.
 *
 *   commits_per_s_1_group          4 KiB proposals committed (applied on the leader) per second, 1 group
 *   commits_per_s_1000_groups      the same spread over 1,000 groups
 *   p99_commit_us_1_group          proposal -> applied on the leader, 99th percentile, with 256
 *                                  proposals outstanding (p99_commit_us_1_group_saturated: at the
 *                                  saturating load of commits_per_s_1_group, mostly queueing)
 *   idle_msgs_per_s_merged_*       node messages per second between two idle nodes sharing N groups
 *   idle_msgs_per_s_unmerged_1000_groups   the same without heartbeat merging
 *   commits_per_s_1_group_through_codec    1 group with every node message encoded and decoded
 *                                   (protobuf header, payload tail copied once on receive)
 *
 * Time for the idle figures is virtual: one tick = 100 ms, a heartbeat round every tick.
 * The baseline is the target itself (200,000 commits/s for one group) and the unmerged run.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MemoryStorage, MultiRaft, Role, decodeNodeMessage, encodeNodeMessage } from '../../kernel/raft/index.js';
import type { Entry, GroupId, NodeId, NodeMessage } from '../../kernel/raft/index.js';

const TARGET_COMMITS_PER_S = 200_000;
const PAYLOAD = 4096;
const COMPACT_EVERY = 8192;
const EMPTY = new Uint8Array(0);

/** A seeded PRNG so runs are comparable. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Cluster {
  readonly nodes: Map<NodeId, MultiRaft>;
  readonly inbox: Map<NodeId, NodeMessage[]>;
  applied: number;
  snapshotsInstalled: number;
  onApply: ((group: GroupId, entries: readonly Entry[]) => void) | undefined;
}

/** A node message through the wire codec, as a transport would carry it (header + joined tail). */
function overTheWire(m: NodeMessage): NodeMessage {
  const { header, payload } = encodeNodeMessage(m);
  return decodeNodeMessage(header, payload.length === 1 ? payload[0]! : Buffer.concat(payload));
}

function cluster(ids: NodeId[], groups: number, merge: boolean, wire = false): Cluster {
  const c: Cluster = { nodes: new Map(), inbox: new Map(), applied: 0, snapshotsInstalled: 0, onApply: undefined };
  const random = rng(42);
  for (const id of ids) {
    c.inbox.set(id, []);
    const storages = new Map<GroupId, MemoryStorage>();
    const mr = new MultiRaft({
      node: id,
      random,
      send: (m) => c.inbox.get(m.to)!.push(wire ? overTheWire(m) : m),
      flush: () => Promise.resolve(),
      mergeHeartbeats: merge,
      groupOptions: { electionTicks: 10, heartbeatTicks: 1, maxInflight: 64, maxMsgBytes: 1 << 20, maxApplyBytes: 64 << 20 },
      handler: {
        apply: (group, entries) => {
          if (mr.group(group)?.role === Role.Leader) c.onApply?.(group, entries);
          // Like a real state machine, snapshot now and then so the log (and the payloads it
          // holds on to) stays bounded, keeping COMPACT_EVERY entries for followers in flight:
          // a follower fed an (empty) snapshot instead of entries would inflate the figures.
          const last = entries[entries.length - 1]!;
          const storage = storages.get(group)!;
          if (last.index - storage.firstIndex() >= 2 * COMPACT_EVERY) {
            const at = last.index - COMPACT_EVERY;
            storage.createSnapshot({ meta: { index: at, term: storage.term(at)!, membership: mr.group(group)!.membershipAt(at) }, data: EMPTY });
          }
        },
        restore: () => {
          c.snapshotsInstalled++;
        },
      },
    });
    c.nodes.set(id, mr);
    for (let g = 0; g < groups; g++) {
      const storage = new MemoryStorage({ voters: ids, learners: [] });
      storages.set(`1.${g.toString(16)}`, storage);
      mr.createGroup(`1.${g.toString(16)}`, storage);
    }
  }
  return c;
}

/** One synchronous pass: deliver, then one collect/complete round per node (storage is memory). */
function pump(c: Cluster): boolean {
  let busy = false;
  for (const [id, mr] of c.nodes) {
    const inbox = c.inbox.get(id)!;
    if (inbox.length > 0) {
      c.inbox.set(id, []);
      for (const m of inbox) mr.receive(m);
      busy = true;
    }
    if (mr.hasReady()) {
      mr.complete(mr.collect());
      busy = true;
    }
  }
  return busy;
}

function settle(c: Cluster): void {
  for (let i = 0; i < 10_000 && pump(c); i++);
}

function elect(c: Cluster, groups: number, spread: boolean): void {
  const ids = [...c.nodes.keys()];
  for (let g = 0; g < groups; g++) {
    const id = spread ? ids[g % ids.length]! : ids[0]!;
    c.nodes.get(id)!.group(`1.${g.toString(16)}`)!.campaign();
  }
  settle(c);
  for (let g = 0; g < groups; g++) {
    const id = spread ? ids[g % ids.length]! : ids[0]!;
    if (c.nodes.get(id)!.group(`1.${g.toString(16)}`)!.role !== Role.Leader) throw new Error(`group ${g} has no leader`);
  }
}

/** Committed proposals per second with a bounded number outstanding, and commit latency. */
function throughput(groups: number, durationMs: number, wire = false, window?: { batch: number; outstanding: number }): { perSecond: number; p99us: number } {
  const c = cluster([1, 2, 3], groups, true, wire);
  elect(c, groups, true);
  const ids = [...c.nodes.keys()];
  const payloads = Array.from({ length: 4096 }, (_, i) => new Uint8Array(PAYLOAD).fill(i & 0xff));
  const batch = window?.batch ?? (groups === 1 ? 512 : 16);
  const maxOutstanding = window?.outstanding ?? (groups === 1 ? 8192 : 64);
  const outstanding = new Map<GroupId, number>();
  const proposedAt = new Map<GroupId, { index: number; at: number }[]>();
  const latencies: number[] = [];
  let committed = 0;
  let p = 0;
  c.onApply = (group, entries) => {
    const q = proposedAt.get(group);
    for (const e of entries) {
      if (e.data.byteLength === 0) continue;
      committed++;
      outstanding.set(group, (outstanding.get(group) ?? 0) - 1);
    }
    const last = entries[entries.length - 1]!.index;
    const now = performance.now();
    while (q && q.length > 0 && q[0]!.index <= last) latencies.push((now - q.shift()!.at) * 1000);
  };
  const groupIds = Array.from({ length: groups }, (_, g) => `1.${g.toString(16)}`);
  const start = performance.now();
  let end = start;
  while ((end = performance.now()) - start < durationMs) {
    for (let g = 0; g < groups; g++) {
      const id = groupIds[g]!;
      const raft = c.nodes.get(ids[g % ids.length]!)!.group(id)!;
      const out = outstanding.get(id) ?? 0;
      if (out >= maxOutstanding) continue;
      const datas: Uint8Array[] = [];
      for (let i = 0; i < batch; i++) datas.push(payloads[p++ & 4095]!);
      const first = raft.proposeBatch(datas);
      outstanding.set(id, out + batch);
      let q = proposedAt.get(id);
      if (!q) proposedAt.set(id, (q = []));
      q.push({ index: first + batch - 1, at: performance.now() });
    }
    pump(c);
  }
  latencies.sort((a, b) => a - b);
  if (c.snapshotsInstalled > 0) throw new Error(`${c.snapshotsInstalled} snapshots were installed: the figures would be inflated`);
  return { perSecond: (committed / (end - start)) * 1000, p99us: latencies[Math.floor(latencies.length * 0.99)] ?? 0 };
}

/** Node messages per second between two idle nodes sharing `groups` groups (leaders split between them). */
function idleMessages(groups: number, merge: boolean): number {
  const c = cluster([1, 2], groups, merge);
  elect(c, groups, true);
  const before = [...c.nodes.values()].reduce((n, mr) => n + mr.stats.nodeMessagesSent, 0);
  const ticks = 50;
  for (let t = 0; t < ticks; t++) {
    for (const mr of c.nodes.values()) mr.tick();
    settle(c);
  }
  const after = [...c.nodes.values()].reduce((n, mr) => n + mr.stats.nodeMessagesSent, 0);
  const tickSeconds = 0.1;
  return (after - before) / (ticks * tickSeconds);
}

type Measure = 'one' | 'many' | 'codec' | 'idle';

/** One measurement, in its own process so the heap of one cannot slow the next. */
function measure(name: Measure): Record<string, number> {
  switch (name) {
    case 'one': {
      throughput(1, 300); // JIT warm-up
      const r = throughput(1, 2000);
      // Latency where queueing does not dominate: 256 proposals outstanding in batches of 32.
      const light = throughput(1, 1000, false, { batch: 32, outstanding: 256 });
      return {
        commits_per_s_1_group: Math.round(r.perSecond),
        p99_commit_us_1_group_saturated: Math.round(r.p99us),
        p99_commit_us_1_group: Math.round(light.p99us),
        commits_per_s_1_group_at_256_outstanding: Math.round(light.perSecond),
      };
    }
    case 'many': {
      throughput(1000, 300);
      const r = throughput(1000, 2000);
      return { commits_per_s_1000_groups: Math.round(r.perSecond), p99_commit_us_1000_groups: Math.round(r.p99us) };
    }
    case 'codec': {
      throughput(1, 300, true);
      return { commits_per_s_1_group_through_codec: Math.round(throughput(1, 2000, true).perSecond) };
    }
    case 'idle':
      return {
        idle_msgs_per_s_merged_1_group: idleMessages(1, true),
        idle_msgs_per_s_merged_2_groups: idleMessages(2, true),
        idle_msgs_per_s_merged_1000_groups: idleMessages(1000, true),
        idle_msgs_per_s_unmerged_1000_groups: idleMessages(1000, false),
      };
  }
}

const only = process.argv[2] as Measure | undefined;
if (only) {
  console.log(JSON.stringify(measure(only)));
} else {
  const figures: Record<string, number> = {};
  for (const name of ['one', 'many', 'codec', 'idle'] as Measure[]) {
    const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), name], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`bench/raft ${name} failed: ${child.stderr}`);
    Object.assign(figures, JSON.parse(child.stdout.trim().split('\n').pop()!));
  }
  const ratios = {
    commits_1_group_vs_target: +(figures.commits_per_s_1_group! / TARGET_COMMITS_PER_S).toFixed(3),
    commits_1000_groups_vs_target: +(figures.commits_per_s_1000_groups! / TARGET_COMMITS_PER_S).toFixed(3),
    idle_merged_2_vs_1000_groups: +(figures.idle_msgs_per_s_merged_2_groups! / figures.idle_msgs_per_s_merged_1000_groups!).toFixed(3),
    idle_unmerged_vs_merged_1000_groups: +(figures.idle_msgs_per_s_unmerged_1000_groups! / figures.idle_msgs_per_s_merged_1000_groups!).toFixed(1),
  };
  console.log(
    `raft: ${figures.commits_per_s_1_group} commits/s (1 group), ${figures.commits_per_s_1000_groups} (1000 groups), ` +
      `${figures.commits_per_s_1_group_through_codec} (1 group through the codec); idle merged ` +
      `${figures.idle_msgs_per_s_merged_1_group}/${figures.idle_msgs_per_s_merged_2_groups}/${figures.idle_msgs_per_s_merged_1000_groups} msgs/s (1/2/1000 groups), unmerged ${figures.idle_msgs_per_s_unmerged_1000_groups}`,
  );
  console.log(JSON.stringify({ bench: 'raft', figures, ratios }));
}
