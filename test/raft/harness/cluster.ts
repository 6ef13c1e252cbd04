/**
 * A scripted cluster for scenario tests: nodes running MultiRaft with one group on a virtual
 * clock stepped by 1 ms (ticks every 10 ms, messages arrive 1 ms after they are sent), crash
 * (loses nothing flushed; every round is flushed at once here), hang (stops, keeps state,
 * resumes with its clock caught up), restart, and a key/value state machine with snapshots.
 * Random faults belong to the simulator (test/sim); this harness does exactly what a test says.
 */
import { MemoryStorage, MultiRaft, Role } from '../../../kernel/raft/index.js';
import type { Entry, Membership, NodeId, NodeMessage, RaftGroup, Snapshot } from '../../../kernel/raft/index.js';
import { KvStateMachine, encodeWrite } from '../../sim/kv.js';
import { Random } from '../../sim/random.js';

export const GROUP = '1.0';
const TICK_MS = 10;

interface ClusterNode {
  readonly id: NodeId;
  mr: MultiRaft;
  volatile: MemoryStorage;
  durable: MemoryStorage;
  sm: KvStateMachine;
  up: boolean;
  hung: boolean;
  hosted: boolean;
  lastTick: number;
  held: NodeMessage[];
}

export interface ClusterOptions {
  readonly nodes: readonly NodeId[];
  readonly voters: readonly NodeId[];
  readonly seed?: number;
  /** Snapshot after this many applied entries (0: never by itself). */
  readonly snapshotEvery?: number;
  readonly chunkBytes?: number;
}

export class Cluster {
  now = 0;
  private readonly random: Random;
  readonly nodes = new Map<NodeId, ClusterNode>();
  private inFlight: { at: number; m: NodeMessage }[] = [];
  private readonly cut = new Set<string>();
  private nextOp = 1;
  /** Writes acknowledged to the client: key -> value. */
  readonly acked = new Map<string, string>();
  private readonly pending = new Map<string, { node: NodeId; key: string; value: string; id: number }>();
  private readonly snapshotEvery: number;
  private readonly chunkBytes: number;
  snapshotsInstalled = 0;
  /** Read points released by ReadIndex or a lease: by which node, when. */
  readonly readsReleased: { node: NodeId; context: number; index: number; at: number }[] = [];

  constructor(options: ClusterOptions) {
    this.random = new Random(options.seed ?? 1);
    this.snapshotEvery = options.snapshotEvery ?? 0;
    this.chunkBytes = options.chunkBytes ?? 64;
    for (const id of options.nodes) {
      const membership: Membership = options.voters.includes(id) ? { voters: [...options.voters], learners: [] } : { voters: [], learners: [] };
      const volatile = new MemoryStorage(membership);
      const node: ClusterNode = { id, mr: undefined!, volatile, durable: volatile.clone(), sm: new KvStateMachine(), up: true, hung: false, hosted: true, lastTick: 0, held: [] };
      this.nodes.set(id, node);
      this.boot(node, 0);
    }
  }

  private boot(node: ClusterNode, applied: number): void {
    node.mr = new MultiRaft({
      node: node.id,
      random: () => this.random.next(),
      send: (m) => {
        if (!this.cut.has(`${m.from}-${m.to}`)) this.inFlight.push({ at: this.now + 1, m });
      },
      flush: () => Promise.resolve(),
      groupOptions: { electionTicks: 10, heartbeatTicks: 2, leaseReads: true, snapshotChunkBytes: this.chunkBytes, snapshotWindow: 2, maxInflight: 16 },
      handler: {
        apply: (_g, entries) => this.apply(node, entries),
        restore: (_g, snapshot) => this.restore(node, snapshot),
        readStates: (_g, states) => {
          for (const s of states) this.readsReleased.push({ node: node.id, context: s.context, index: s.index, at: this.now });
        },
      },
    });
    if (node.hosted) node.mr.createGroup(GROUP, node.volatile, { applied });
    node.lastTick = Math.floor(this.now / TICK_MS);
  }

  raft(id: NodeId): RaftGroup | undefined {
    return this.nodes.get(id)!.mr.group(GROUP);
  }

  /** The live leader of the highest term. */
  leader(): NodeId | undefined {
    let best: NodeId | undefined;
    let term = -1;
    for (const n of this.nodes.values()) {
      const r = n.up && !n.hung ? n.mr.group(GROUP) : undefined;
      if (r && r.role === Role.Leader && r.term > term) {
        best = n.id;
        term = r.term;
      }
    }
    return best;
  }

  // ---- time ---------------------------------------------------------------------------------

  step(): void {
    this.now += 1;
    const due = this.inFlight.filter((x) => x.at <= this.now);
    this.inFlight = this.inFlight.filter((x) => x.at > this.now);
    for (const { m } of due) {
      const to = this.nodes.get(m.to)!;
      if (!to.up) continue;
      if (to.hung) to.held.push(m);
      else to.mr.receive(m);
    }
    for (const n of this.nodes.values()) {
      if (!n.up || n.hung) continue;
      const tick = Math.floor(this.now / TICK_MS);
      while (n.lastTick < tick) {
        n.lastTick++;
        n.mr.tick();
      }
      for (let i = 0; i < 20 && n.mr.hasReady(); i++) {
        const round = n.mr.collect();
        n.durable = n.volatile.clone();
        n.mr.complete(round);
      }
    }
  }

  run(ms: number): void {
    for (let i = 0; i < ms; i++) this.step();
  }

  /** Runs until `done` holds (true) or `ms` pass (false). */
  until(done: () => boolean, ms: number): boolean {
    for (let i = 0; i < ms; i++) {
      if (done()) return true;
      this.step();
    }
    return done();
  }

  // ---- clients ------------------------------------------------------------------------------

  /** Proposes a write at the current leader; false when there is none to take it. */
  write(): boolean {
    const leader = this.leader();
    if (leader === undefined) return false;
    const id = this.nextOp++;
    const key = `k${id}`;
    const value = `v${id}`;
    try {
      const index = this.raft(leader)!.propose(encodeWrite({ id, key, value }));
      this.pending.set(`${leader}/${index}`, { node: leader, key, value, id });
      return true;
    } catch {
      return false;
    }
  }

  /** Writes every `everyMs` for `ms`; returns how many were acknowledged meanwhile. */
  writeFor(ms: number, everyMs = 5): number {
    const before = this.acked.size;
    for (let t = 0; t < ms; t++) {
      if (t % everyMs === 0) this.write();
      this.step();
    }
    return this.acked.size - before;
  }

  /** Whether a fresh write is acknowledged within `ms`. */
  writeCommits(ms: number): boolean {
    const before = this.acked.size;
    return this.until(() => {
      if (this.acked.size > before) return true;
      if (this.now % 20 === 0) this.write();
      return false;
    }, ms);
  }

  private apply(node: ClusterNode, entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index <= node.sm.applied) continue;
      const op = e.type === 0 ? node.sm.apply(e.index, e.data) : node.sm.apply(e.index, undefined);
      const p = this.pending.get(`${node.id}/${e.index}`);
      if (p) {
        this.pending.delete(`${node.id}/${e.index}`);
        if (op && op.id === p.id) this.acked.set(p.key, p.value);
      }
    }
    if (this.snapshotEvery > 0 && node.sm.applied - node.volatile.firstIndex() + 1 >= this.snapshotEvery) this.compact(node.id);
  }

  private restore(node: ClusterNode, snapshot: Snapshot): void {
    node.sm.restore(snapshot.meta.index, snapshot.data);
    this.snapshotsInstalled++;
  }

  /** Takes a snapshot at the node's applied index and trims its log. */
  compact(id: NodeId): void {
    const node = this.nodes.get(id)!;
    const index = node.sm.applied;
    if (index < node.volatile.firstIndex()) return;
    node.volatile.createSnapshot({ meta: { index, term: node.volatile.term(index)!, membership: this.raft(id)!.membershipAt(index) }, data: node.sm.snapshot() });
  }

  // ---- faults -------------------------------------------------------------------------------

  crash(id: NodeId): void {
    const n = this.nodes.get(id)!;
    n.up = false;
    n.hung = false;
    n.held = [];
    for (const [k, p] of this.pending) if (p.node === id) this.pending.delete(k);
  }

  restart(id: NodeId): void {
    const n = this.nodes.get(id)!;
    if (n.up) return;
    n.up = true;
    n.volatile = n.durable.clone();
    const snap = n.volatile.snapshot();
    n.sm = new KvStateMachine();
    n.sm.restore(snap.meta.index, snap.data);
    this.boot(n, snap.meta.index);
  }

  hang(id: NodeId): void {
    this.nodes.get(id)!.hung = true;
  }

  resume(id: NodeId): void {
    const n = this.nodes.get(id)!;
    if (!n.hung) return;
    n.hung = false;
    const held = n.held;
    n.held = [];
    for (const m of held) n.mr.receive(m);
  }

  /** Brings back every crashed or hung node and heals the network. */
  recover(): void {
    this.cut.clear();
    for (const n of this.nodes.values()) {
      if (!n.up) this.restart(n.id);
      if (n.hung) this.resume(n.id);
    }
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}-${other}`);
      this.cut.add(`${other}-${id}`);
    }
  }

  // ---- checks -------------------------------------------------------------------------------

  /** Acknowledged writes missing from a member that has applied up to the leader's commit. */
  lostWrites(): string[] {
    const lost: string[] = [];
    for (const n of this.nodes.values()) {
      const raft = n.mr.group(GROUP);
      if (!raft || !n.up) continue;
      const m = raft.membership;
      if (!m.voters.includes(n.id) && !m.learners.includes(n.id)) continue;
      for (const [k, v] of this.acked) if (n.sm.values.get(k) !== v) lost.push(`n${n.id} lacks ${k}=${v}`);
    }
    return lost;
  }

  /** Every member applied the leader's commit index. */
  converged(): boolean {
    const leader = this.leader();
    if (leader === undefined) return false;
    const raft = this.raft(leader)!;
    const commit = raft.log.committed;
    return [...raft.membership.voters, ...raft.membership.learners].every((id) => {
      const n = this.nodes.get(id)!;
      return n.up && n.sm.applied >= commit;
    });
  }
}
