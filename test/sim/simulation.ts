/**
 * The deterministic simulator: a few nodes, each a MultiRaft hosting some of many groups, on a
 * virtual clock, a simulated network and storage that loses whatever was not flushed when its
 * node crashes. Clients write and read key/value registers through the groups' leaders while
 * faults are injected at random: crashes and restarts, hangs, symmetric and one-way partitions,
 * message loss, duplication and reordering, membership changes and leadership transfers.
 *
 * Checkers run after every event (one leader per term per group, committed entries never
 * change, every replica applies the same sequence, a new leader holds every committed entry,
 * log matching) and at the end (liveness after healing, replicas converge, the client history
 * is linearizable). Everything random comes from one seed, so a seed replays exactly; the trace
 * hash proves it.
 */
import { createHash } from 'node:crypto';
import { MemoryStorage, MultiRaft, Role, EntryType, decodeMembership, decodeNodeMessage, encodeNodeMessage, isMember } from '../../kernel/raft/index.js';
import type { Entry, GroupId, Membership, NodeId, NodeMessage, RaftGroup, ReadState, Round, Snapshot, SoftState } from '../../kernel/raft/index.js';
import { EventQueue } from './event-queue.js';
import { KvStateMachine, decodeWrite, encodeWrite } from './kv.js';
import { checkHistory } from './linearizability.js';
import type { Operation } from './linearizability.js';
import { SimNetwork } from './network.js';
import { Random } from './random.js';

export interface SimOptions {
  readonly seed: number;
  /** Virtual milliseconds of faults and client traffic before the healing phase. */
  readonly durationMs?: number;
  /** Record a human-readable trace (for debugging one seed). */
  readonly trace?: boolean;
}

export interface SimResult {
  readonly seed: number;
  readonly hash: string;
  readonly violations: readonly string[];
  readonly stats: Readonly<Record<string, number>>;
  readonly traceLines: readonly string[];
}

type Event =
  | { kind: 'tick'; node: NodeId }
  | { kind: 'deliver'; node: NodeId; message: NodeMessage }
  | { kind: 'process'; node: NodeId }
  | { kind: 'flushed'; node: NodeId; round: Round; epoch: number }
  | { kind: 'client'; node: NodeId; group: GroupId; op: 'put' | 'get'; key: string; client: number }
  | { kind: 'fault' }
  | { kind: 'restart'; node: NodeId }
  | { kind: 'resume'; node: NodeId }
  | { kind: 'heal' };

interface GroupReplica {
  volatile: MemoryStorage;
  durable: MemoryStorage;
  sm: KvStateMachine;
  snapshotEvery: number;
  sinceSnapshot: number;
}

interface PendingPut {
  readonly opIndex: number;
  readonly opId: number;
}

interface PendingRead {
  readonly opIndex: number;
  readonly key: string;
  index: number;
}

const TICK_MS = 10;
const ELECTION_TICKS = 10;
const OP_TIMEOUT_MS = 2000;
const HEAL_BOUND_MS = 6000;

class SimNode {
  mr!: MultiRaft;
  up = true;
  hung = false;
  /** Incremented on every crash, so a flush that completes for an older incarnation is ignored. */
  epoch = 0;
  roundInFlight = false;
  processScheduled = false;
  deferred: Event[] = [];
  readonly replicas = new Map<GroupId, GroupReplica>();
  readonly tombstones = new Map<GroupId, { term: number; vote: NodeId }>();
  readonly pendingPuts = new Map<string, PendingPut>();
  readonly pendingReads = new Map<number, PendingRead>();
  readonly waitingReads: (PendingRead & { group: GroupId })[] = [];
  lastTick = 0;

  constructor(readonly id: NodeId) {}
}

export class Simulation {
  private readonly random: Random;
  private readonly queue = new EventQueue<Event>();
  private readonly net: SimNetwork;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly groupIds: GroupId[] = [];
  private now = 0;
  private readonly hash = createHash('sha256');
  private readonly traceLines: string[] = [];
  readonly violations: string[] = [];
  private readonly history: Operation[] = [];
  private nextOpId = 1;
  private nextReadCtx = 1;
  private readonly leaders = new Map<string, NodeId>();
  /** Per group, what each committed index holds, and a term by which it was surely committed. */
  private readonly committed = new Map<GroupId, Map<number, { print: string; term: number; commitTerm: number }>>();
  private readonly lastMembership = new Map<GroupId, { index: number; membership: Membership }>();
  private readonly leaseReads: boolean;
  /** Per seed: heartbeat merging, heartbeat interval, pipelining depth, snapshot chunk size, and
   * whether node messages go through the wire codec (as bytes, like over a socket). */
  private readonly tuning: { merge: boolean; heartbeatTicks: number; maxInflight: number; chunkBytes: number; wire: boolean };
  private readonly durationMs: number;
  private healing = false;
  private eventsRun = 0;
  private readonly counters: Record<string, number> = {};

  constructor(private readonly options: SimOptions) {
    this.random = new Random(options.seed);
    const r = this.random;
    const nodeCount = 3 + r.int(3);
    const groupCount = 2 + r.int(7);
    this.durationMs = options.durationMs ?? 2500;
    this.leaseReads = r.chance(0.5);
    this.tuning = {
      merge: r.chance(0.8),
      heartbeatTicks: r.pick([1, 2, 3]),
      maxInflight: r.pick([1, 4, 16]),
      chunkBytes: r.pick([16, 64, 1024]),
      wire: r.chance(0.25),
    };
    this.net = new SimNetwork(r.fork(), {
      minDelayMs: 0.5,
      maxDelayMs: 1 + r.int(12),
      dropRate: r.pick([0, 0.01, 0.05]),
      duplicateRate: r.pick([0, 0.01, 0.03]),
    });
    this.record(`seed ${options.seed} nodes=${nodeCount} groups=${groupCount} lease=${this.leaseReads} tuning=${JSON.stringify(this.tuning)} net=${JSON.stringify(this.net.faults)}`);
    for (let id = 1; id <= nodeCount; id++) this.nodes.set(id, new SimNode(id));
    for (const node of this.nodes.values()) this.boot(node);
    const ids = [...this.nodes.keys()];
    for (let g = 0; g < groupCount; g++) {
      const group = `1.${g.toString(16)}`;
      this.groupIds.push(group);
      const voters = shuffle(ids, r).slice(0, 3).sort((a, b) => a - b);
      for (const id of voters) this.host(this.nodes.get(id)!, group, { voters, learners: [] });
      this.lastMembership.set(group, { index: 0, membership: { voters, learners: [] } });
      this.committed.set(group, new Map());
    }
    for (const node of this.nodes.values()) this.queue.push(r.next() * TICK_MS, { kind: 'tick', node: node.id });
    this.queue.push(5, { kind: 'fault' });
    this.scheduleClient();
  }

  // ---- running ------------------------------------------------------------------------------

  run(): SimResult {
    const end = this.durationMs;
    while (this.violations.length === 0) {
      const next = this.queue.pop();
      if (!next) break;
      this.now = next.at;
      if (!this.healing && this.now >= end) this.startHealing();
      if (this.healing && this.now >= end + HEAL_BOUND_MS) break;
      this.hashEvent(next.event);
      this.dispatch(next.event);
      this.eventsRun++;
      this.checkLeaders();
      if ('node' in next.event && next.event.node !== 0) this.checkLogTails(next.event.node);
      if (this.eventsRun % 200 === 0) this.checkLogMatching();
      if (this.healing && this.converged()) break;
    }
    if (this.violations.length === 0) this.finalChecks();
    const stats = { ...this.counters, events: this.eventsRun, virtualMs: Math.round(this.now), ops: this.history.length, netSent: this.net.sent, netDropped: this.net.dropped };
    this.record(`end ${JSON.stringify(stats)} violations=${this.violations.length}`);
    return { seed: this.options.seed, hash: this.hash.digest('hex').slice(0, 16), violations: this.violations, stats, traceLines: this.traceLines };
  }

  private record(line: string): void {
    this.hash.update(line);
    this.hash.update('\n');
    if (this.options.trace) this.traceLines.push(`${this.now.toFixed(3)} ${line}`);
  }

  /** Every event goes into the trace hash, so two runs agree on the hash only if they agree on everything. */
  private hashEvent(e: Event): void {
    let line = `${this.now.toFixed(6)} ${e.kind}`;
    if ('node' in e) line += ` n${e.node}`;
    if (e.kind === 'deliver') line += ` from n${e.message.from} ${e.message.messages.length}/${e.message.beats.length}/${e.message.beatResponses.length}`;
    if (e.kind === 'client') line += ` ${e.group} ${e.op} ${e.key}`;
    this.hash.update(line);
  }

  private count(name: string): void {
    this.counters[name] = (this.counters[name] ?? 0) + 1;
  }

  private violation(what: string): void {
    this.record(`VIOLATION ${what}`);
    this.violations.push(`t=${this.now.toFixed(3)}ms: ${what}`);
  }

  private dispatch(e: Event): void {
    if ('node' in e && e.node !== 0) {
      const node = this.nodes.get(e.node)!;
      if (!node.up && e.kind !== 'restart') return;
      if (node.hung && e.kind !== 'resume') {
        if (e.kind !== 'tick') node.deferred.push(e);
        else this.queue.push(this.now + TICK_MS, e);
        return;
      }
    }
    switch (e.kind) {
      case 'tick':
        return this.onTick(this.nodes.get(e.node)!);
      case 'deliver':
        return this.onDeliver(this.nodes.get(e.node)!, e.message);
      case 'process':
        return this.onProcess(this.nodes.get(e.node)!);
      case 'flushed':
        return this.onFlushed(this.nodes.get(e.node)!, e.round, e.epoch);
      case 'client':
        return this.onClient(this.nodes.get(e.node), e);
      case 'fault':
        return this.onFault();
      case 'restart':
        return this.restart(this.nodes.get(e.node)!);
      case 'resume':
        return this.resume(this.nodes.get(e.node)!);
      case 'heal':
        this.record('heal partitions');
        this.net.healAll();
        return;
    }
  }

  // ---- nodes --------------------------------------------------------------------------------

  private boot(node: SimNode): void {
    node.mr = new MultiRaft({
      node: node.id,
      random: () => this.random.next(),
      send: (m) => this.send(m),
      flush: () => Promise.resolve(),
      mergeHeartbeats: this.tuning.merge,
      groupOptions: {
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: this.tuning.heartbeatTicks,
        preVote: true,
        checkQuorum: true,
        leaseReads: this.leaseReads,
        maxMsgBytes: 4096,
        maxInflight: this.tuning.maxInflight,
        snapshotChunkBytes: this.tuning.chunkBytes,
        snapshotWindow: 2,
      },
      handler: {
        apply: (group, entries) => this.onApply(node, group, entries),
        restore: (group, snapshot) => this.onRestore(node, group, snapshot),
        readStates: (group, states) => this.onReadStates(node, group, states),
        softState: (group, state) => this.onSoftState(node, group, state),
      },
    });
    node.lastTick = Math.floor(this.now / TICK_MS);
  }

  private host(node: SimNode, group: GroupId, membership: Membership): RaftGroup {
    const storage = new MemoryStorage(membership);
    const tomb = node.tombstones.get(group);
    // A replica never forgets a vote, even across removal and re-addition (no amnesia).
    if (tomb) storage.setHardState({ term: tomb.term, vote: tomb.vote, commit: 0 });
    const replica: GroupReplica = { volatile: storage, durable: storage.clone(), sm: new KvStateMachine(), snapshotEvery: 10 + this.random.int(40), sinceSnapshot: 0 };
    node.replicas.set(group, replica);
    return node.mr.createGroup(group, storage);
  }

  private unhost(node: SimNode, group: GroupId): void {
    const raft = node.mr.group(group);
    if (!raft) return;
    node.tombstones.set(group, { term: raft.term, vote: raft.vote });
    node.mr.destroyGroup(group);
    node.replicas.delete(group);
    for (const [key, p] of node.pendingPuts) {
      if (key.startsWith(`${group}/`)) {
        this.unknownOutcome(p.opIndex);
        node.pendingPuts.delete(key);
      }
    }
    this.record(`n${node.id} destroys ${group}`);
  }

  private send(m: NodeMessage): void {
    const delays = this.net.deliveries(m);
    if (delays.length === 0) return;
    let delivered = m;
    if (this.tuning.wire) {
      const { header, payload } = encodeNodeMessage(m);
      delivered = decodeNodeMessage(header, Buffer.concat(payload));
    }
    for (const delay of delays) this.queue.push(this.now + delay, { kind: 'deliver', node: m.to, message: delivered });
  }

  private schedule(node: SimNode): void {
    if (node.processScheduled || node.roundInFlight) return;
    node.processScheduled = true;
    this.queue.push(this.now, { kind: 'process', node: node.id });
  }

  private onTick(node: SimNode): void {
    // Ticks follow the node's clock: after a hang, the missed ones all fire (a monotonic timer).
    const due = Math.floor(this.now / TICK_MS);
    while (node.lastTick < due) {
      node.lastTick++;
      node.mr.tick();
    }
    this.queue.push(this.now + TICK_MS, { kind: 'tick', node: node.id });
    this.schedule(node);
  }

  private onDeliver(node: SimNode, m: NodeMessage): void {
    node.mr.receive(m);
    this.schedule(node);
  }

  private onProcess(node: SimNode): void {
    node.processScheduled = false;
    if (node.roundInFlight || !node.mr.hasReady()) return;
    const round = node.mr.collect();
    node.roundInFlight = true;
    this.queue.push(this.now + 0.1 + this.random.next() * 2, { kind: 'flushed', node: node.id, round, epoch: node.epoch });
  }

  private onFlushed(node: SimNode, round: Round, epoch: number): void {
    if (epoch !== node.epoch) return;
    for (const replica of node.replicas.values()) replica.durable = replica.volatile.clone();
    node.roundInFlight = false;
    node.mr.complete(round);
    this.schedule(node);
  }

  private crash(node: SimNode): void {
    this.record(`n${node.id} crashes`);
    this.count('crashes');
    node.up = false;
    node.hung = false;
    node.epoch++;
    node.roundInFlight = false;
    node.processScheduled = false;
    node.deferred = [];
    for (const p of node.pendingPuts.values()) this.unknownOutcome(p.opIndex);
    node.pendingPuts.clear();
    node.pendingReads.clear();
    node.waitingReads.length = 0;
  }

  private restart(node: SimNode): void {
    if (node.up) return;
    this.record(`n${node.id} restarts`);
    node.up = true;
    this.boot(node);
    for (const [group, replica] of node.replicas) {
      replica.volatile = replica.durable.clone();
      const snap = replica.volatile.snapshot();
      replica.sm = new KvStateMachine();
      replica.sm.restore(snap.meta.index, snap.data);
      node.mr.createGroup(group, replica.volatile, { applied: snap.meta.index });
    }
    this.queue.push(this.now + TICK_MS, { kind: 'tick', node: node.id });
  }

  private hang(node: SimNode): void {
    this.record(`n${node.id} hangs`);
    this.count('hangs');
    node.hung = true;
  }

  private resume(node: SimNode): void {
    if (!node.hung) return;
    this.record(`n${node.id} resumes`);
    node.hung = false;
    const deferred = node.deferred;
    node.deferred = [];
    this.onTick(node);
    for (const e of deferred) this.dispatch(e);
  }

  // ---- state machine ------------------------------------------------------------------------

  private onApply(node: SimNode, group: GroupId, entries: readonly Entry[]): void {
    const replica = node.replicas.get(group)!;
    const committed = this.committed.get(group)!;
    for (const e of entries) {
      if (node.replicas.get(group) !== replica) return; // removed by a membership entry of this batch
      if (e.index <= replica.sm.applied) continue;
      if (e.index !== replica.sm.applied + 1) this.violation(`n${node.id} ${group} applies ${e.index} after ${replica.sm.applied}`);
      const print = `${e.term}:${e.type}:${Buffer.from(e.data).toString('latin1')}`;
      const seen = committed.get(e.index);
      // The applying node learned of the commit in its current term at the latest.
      if (seen === undefined) committed.set(e.index, { print, term: e.term, commitTerm: node.mr.group(group)!.term });
      else if (seen.print !== print) this.violation(`${group} index ${e.index}: n${node.id} applies ${print}, another replica applied ${seen.print}`);
      if (e.type === EntryType.Membership) {
        replica.sm.apply(e.index, undefined);
        this.onMembershipApplied(group, e.index, decodeMembership(e.data));
      } else {
        const op = replica.sm.apply(e.index, e.data);
        const key = `${group}/${e.index}`;
        const pending = node.pendingPuts.get(key);
        if (pending) {
          node.pendingPuts.delete(key);
          if (op && op.id === pending.opId) this.complete(pending.opIndex, undefined);
          else this.discard(pending.opIndex);
        }
      }
    }
    if (node.replicas.get(group) !== replica) return; // this replica was just removed
    this.serveWaitingReads(node, group);
    replica.sinceSnapshot += entries.length;
    if (replica.sinceSnapshot >= replica.snapshotEvery && replica.sm.applied > replica.volatile.firstIndex()) {
      replica.sinceSnapshot = 0;
      const index = replica.sm.applied;
      const raft = node.mr.group(group)!;
      const term = replica.volatile.term(index)!;
      replica.volatile.createSnapshot({ meta: { index, term, membership: raft.membershipAt(index) }, data: replica.sm.snapshot() });
      this.count('snapshots');
    }
  }

  private onRestore(node: SimNode, group: GroupId, snapshot: Snapshot): void {
    const replica = node.replicas.get(group)!;
    replica.sm.restore(snapshot.meta.index, snapshot.data);
    this.count('snapshotsInstalled');
    this.record(`n${node.id} ${group} installs snapshot ${snapshot.meta.term}/${snapshot.meta.index}`);
  }

  private onMembershipApplied(group: GroupId, index: number, membership: Membership): void {
    const last = this.lastMembership.get(group)!;
    if (index <= last.index) return;
    this.lastMembership.set(group, { index, membership });
    this.record(`${group} membership v=${membership.voters} l=${membership.learners} at ${index}`);
    for (const node of this.nodes.values()) {
      if (isMember(last.membership, node.id) && !isMember(membership, node.id) && node.replicas.has(group)) {
        // Removed replicas are destroyed by the operator once the change is committed.
        if (node.up) this.unhost(node, group);
        else node.replicas.delete(group);
      }
    }
  }

  private onSoftState(node: SimNode, group: GroupId, state: SoftState): void {
    this.record(`n${node.id} ${group} ${state.role} leader=${state.leader}`);
    if (state.role !== Role.Leader) {
      for (const [ctx, r] of node.pendingReads) {
        if ((r as PendingRead & { group?: GroupId }).group === group) node.pendingReads.delete(ctx);
      }
    }
  }

  private onReadStates(node: SimNode, group: GroupId, states: readonly ReadState[]): void {
    for (const s of states) {
      const r = node.pendingReads.get(s.context);
      if (!r) continue;
      node.pendingReads.delete(s.context);
      r.index = s.index;
      node.waitingReads.push({ ...r, group });
    }
    this.serveWaitingReads(node, group);
  }

  private serveWaitingReads(node: SimNode, group: GroupId): void {
    const replica = node.replicas.get(group);
    if (!replica) return;
    for (let i = 0; i < node.waitingReads.length; ) {
      const r = node.waitingReads[i]!;
      if (r.group === group && replica.sm.applied >= r.index) {
        this.complete(r.opIndex, replica.sm.values.get(r.key));
        node.waitingReads.splice(i, 1);
      } else i++;
    }
  }

  // ---- clients ------------------------------------------------------------------------------

  private scheduleClient(): void {
    this.queue.push(this.now + 1 + this.random.next() * 4, { kind: 'client', node: 0, group: '', op: 'put', key: '', client: 0 });
  }

  private onClient(target: SimNode | undefined, e: Extract<Event, { kind: 'client' }>): void {
    if (e.node === 0) {
      // A new client request: aimed at the group's leader as far as a client can tell.
      if (!this.healing) this.scheduleClient();
      const group = this.random.pick(this.groupIds);
      // Clients have stale hints: any node that believes it leads may get the request.
      const believers = [...this.nodes.values()].filter((n) => n.up && n.mr.group(group)?.role === Role.Leader);
      if (believers.length === 0) return;
      const leader = this.random.pick(believers);
      const op = this.random.chance(0.5) ? 'put' : 'get';
      const key = `k${this.random.int(6)}`;
      const client = 1 + this.random.int(1000);
      this.queue.push(this.now + 0.2, { kind: 'client', node: leader.id, group, op, key, client });
      return;
    }
    const node = target!;
    const raft = node.mr.group(e.group);
    if (!raft) return;
    try {
      if (e.op === 'put') {
        const id = this.nextOpId++;
        const value = `v${id}`;
        const index = raft.propose(encodeWrite({ id, key: e.key, value }));
        const opIndex = this.history.push({ client: e.client, key: `${e.group}/${e.key}`, kind: 'put', value, call: this.now - 0.2, ret: NaN }) - 1;
        node.pendingPuts.set(`${e.group}/${index}`, { opIndex, opId: id });
        this.count('puts');
      } else {
        const ctx = this.nextReadCtx++;
        raft.readIndex(ctx);
        const opIndex = this.history.push({ client: e.client, key: `${e.group}/${e.key}`, kind: 'get', value: undefined, call: this.now - 0.2, ret: NaN }) - 1;
        const pending = { opIndex, key: e.key, index: 0, group: e.group };
        node.pendingReads.set(ctx, pending);
        this.count('gets');
      }
      this.schedule(node);
    } catch {
      this.count('refused');
    }
  }

  private complete(opIndex: number, value: string | undefined): void {
    const op = this.history[opIndex]!;
    if (!Number.isNaN(op.ret)) return;
    this.history[opIndex] = { ...op, ret: this.now, value: op.kind === 'get' ? value : op.value };
  }

  private unknownOutcome(opIndex: number): void {
    const op = this.history[opIndex]!;
    if (Number.isNaN(op.ret)) this.history[opIndex] = { ...op, ret: Infinity };
  }

  /** A write whose entry lost its index to another: it never took effect. */
  private discard(opIndex: number): void {
    const op = this.history[opIndex]!;
    if (Number.isNaN(op.ret)) this.history[opIndex] = { ...op, ret: -1 };
  }

  private currentLeader(group: GroupId): SimNode | undefined {
    let best: SimNode | undefined;
    let term = -1;
    for (const node of this.nodes.values()) {
      if (!node.up) continue;
      const raft = node.mr.group(group);
      if (raft && raft.role === Role.Leader && raft.term > term) {
        best = node;
        term = raft.term;
      }
    }
    return best;
  }

  // ---- faults -------------------------------------------------------------------------------

  private onFault(): void {
    if (this.healing) return;
    this.queue.push(this.now + 10 + this.random.next() * 100, { kind: 'fault' });
    const r = this.random;
    const nodes = [...this.nodes.values()];
    const live = nodes.filter((n) => n.up && !n.hung);
    const down = nodes.length - live.length;
    const maxDown = (nodes.length - 1) >> 1;
    switch (r.int(9)) {
      case 0:
      case 6: {
        if (down >= maxDown || live.length === 0) return;
        // Crashes that hurt: mid-flush (unflushed writes lost) or of a leader.
        const flushing = live.filter((n) => n.roundInFlight);
        const leaders = live.filter((n) => this.groupIds.some((g) => n.mr.group(g)?.role === Role.Leader));
        const node = flushing.length > 0 && r.chance(0.5) ? r.pick(flushing) : leaders.length > 0 && r.chance(0.7) ? r.pick(leaders) : r.pick(live);
        this.crash(node);
        this.queue.push(this.now + 30 + r.next() * 400, { kind: 'restart', node: node.id });
        return;
      }
      case 1: {
        if (down >= maxDown || live.length === 0) return;
        const node = r.pick(live);
        this.hang(node);
        this.queue.push(this.now + 30 + r.next() * 400, { kind: 'resume', node: node.id });
        return;
      }
      case 2: {
        if (this.net.cutCount > 0) return;
        const ids = shuffle(nodes.map((n) => n.id), r);
        const split = 1 + r.int(ids.length - 1);
        const oneWay = r.chance(0.3);
        for (const a of ids.slice(0, split)) {
          for (const b of ids.slice(split)) {
            this.net.cutLink(a, b);
            if (!oneWay) this.net.cutLink(b, a);
          }
        }
        this.record(`partition ${ids.slice(0, split)} ${oneWay ? '->' : '/'} ${ids.slice(split)}`);
        this.count('partitions');
        this.queue.push(this.now + 50 + r.next() * 500, { kind: 'heal' });
        return;
      }
      case 3:
      case 4:
        return this.changeMembership();
      case 5: {
        const group = r.pick(this.groupIds);
        const leader = this.currentLeader(group);
        if (!leader) return;
        const raft = leader.mr.group(group)!;
        const to = r.pick(raft.membership.voters);
        try {
          raft.transferLeader(to);
          this.record(`${group} transfer ${leader.id} -> ${to}`);
          this.count('transfers');
          this.schedule(leader);
        } catch {
          // Not a voter any more: nothing to do.
        }
        return;
      }
      default:
        return;
    }
  }

  private changeMembership(): void {
    const r = this.random;
    const group = r.pick(this.groupIds);
    const leaderNode = this.currentLeader(group);
    if (!leaderNode) return;
    const raft = leaderNode.mr.group(group)!;
    const m = raft.membership;
    let next: Membership | undefined;
    let newcomer: SimNode | undefined;
    if (m.learners.length > 0) {
      const learner = m.learners[0]!;
      const pr = raft.status().progress.get(learner);
      if (pr && pr.match + 5 >= raft.log.lastIndex()) next = { voters: [...m.voters, learner], learners: m.learners.slice(1) };
    } else if (m.voters.length >= 4 || (m.voters.length === 3 && r.chance(0.3))) {
      const victim = r.pick(m.voters);
      if (m.voters.length > 3 || r.chance(0.5)) next = { voters: m.voters.filter((v) => v !== victim), learners: [] };
    } else {
      // A node still hosting a replica of the group may be about to destroy it (its removal is
      // committed but not yet applied): only nodes without one get a fresh replica.
      const candidates = [...this.nodes.values()].filter((n) => n.up && !isMember(m, n.id) && !n.replicas.has(group));
      if (candidates.length > 0) {
        newcomer = r.pick(candidates);
        next = { voters: m.voters, learners: [newcomer.id] };
      }
    }
    if (!next || next.voters.length < 2) return;
    try {
      if (newcomer) this.host(newcomer, group, { voters: [], learners: [] });
      raft.proposeMembership(next);
      this.record(`${group} propose membership v=${next.voters} l=${next.learners}`);
      this.count('membershipChanges');
      this.schedule(leaderNode);
    } catch {
      this.count('membershipRefused');
    }
  }

  // ---- checkers -----------------------------------------------------------------------------

  /** At most one leader per term per group. */
  private checkLeaders(): void {
    for (const node of this.nodes.values()) {
      if (!node.up) continue;
      for (const group of this.groupIds) {
        const raft = node.mr.group(group);
        if (!raft || raft.role !== Role.Leader) continue;
        const key = `${group}@${raft.term}`;
        const known = this.leaders.get(key);
        if (known === undefined) {
          this.leaders.set(key, node.id);
          this.checkLeaderCompleteness(node, group);
        } else if (known !== node.id) this.violation(`${group} term ${raft.term} has two leaders: n${known} and n${node.id}`);
      }
    }
  }

  /** A new leader holds every entry known committed, with the same term. */
  private checkLeaderCompleteness(node: SimNode, group: GroupId): void {
    const raft = node.mr.group(group);
    if (!raft) return;
    const first = raft.log.firstIndex();
    for (const [index, c] of this.committed.get(group)!) {
      if (index < first || c.commitTerm >= raft.term) continue;
      const term = raft.log.term(index);
      if (term !== c.term) {
        this.violation(`${group} leader n${node.id} term ${raft.term} lacks entry ${index} committed by term ${c.commitTerm} (${c.print.slice(0, 20)}), has term ${term}`);
        return;
      }
    }
  }

  /**
   * Log matching after every event, on the last entries of the node the event touched (where
   * logs change) against every other replica; the whole logs are compared every 200 events.
   */
  private readonly tailStamps = new Map<string, string>();

  private checkLogTails(id: NodeId): void {
    const node = this.nodes.get(id)!;
    if (!node.up) return;
    for (const group of this.groupIds) {
      const mine = node.mr.group(group);
      if (!mine) continue;
      const last = mine.log.lastIndex();
      // Only logs that changed since their last check can break the property.
      const stamp = `${last}/${mine.log.term(last)}/${mine.log.committed}`;
      const key = `${id}/${group}`;
      if (this.tailStamps.get(key) === stamp) continue;
      this.tailStamps.set(key, stamp);
      const lo = Math.max(mine.log.firstIndex(), last - 7);
      for (const other of this.nodes.values()) {
        const theirs = other !== node && other.up ? other.mr.group(group) : undefined;
        if (!theirs) continue;
        let matched = false;
        for (let i = Math.min(last, theirs.log.lastIndex()); i >= lo; i--) {
          const a = mine.log.term(i);
          const b = theirs.log.term(i);
          if (a === undefined || b === undefined) break;
          if (matched && a !== b) {
            this.violation(`${group} log matching: n${id} and n${other.id} differ at ${i} below a matching entry`);
            return;
          }
          if (a === b) matched = true;
        }
      }
    }
  }

  /** Log matching: two logs with the same term at an index agree on every entry up to it. */
  private checkLogMatching(): void {
    for (const group of this.groupIds) {
      const logs: { id: NodeId; first: number; entries: readonly Entry[] }[] = [];
      for (const node of this.nodes.values()) {
        const raft = node.up ? node.mr.group(group) : undefined;
        if (!raft) continue;
        const first = raft.log.firstIndex();
        logs.push({ id: node.id, first, entries: raft.log.slice(first, raft.log.lastIndex() + 1, Infinity) ?? [] });
      }
      for (let a = 0; a < logs.length; a++) {
        for (let b = a + 1; b < logs.length; b++) {
          const x = logs[a]!;
          const y = logs[b]!;
          const lo = Math.max(x.first, y.first);
          const hi = Math.min(x.first + x.entries.length, y.first + y.entries.length) - 1;
          let matched = false;
          for (let i = hi; i >= lo; i--) {
            const ex = x.entries[i - x.first]!;
            const ey = y.entries[i - y.first]!;
            if (matched) {
              if (ex.term !== ey.term || !Buffer.from(ex.data).equals(Buffer.from(ey.data))) {
                this.violation(`${group} log matching: n${x.id} and n${y.id} differ at ${i} below a matching entry`);
                return;
              }
            } else if (ex.term === ey.term) {
              matched = true;
              if (!Buffer.from(ex.data).equals(Buffer.from(ey.data))) this.violation(`${group} n${x.id}/n${y.id} same term ${ex.term} at ${i}, different data`);
            }
          }
        }
      }
    }
  }

  // ---- healing and the end ------------------------------------------------------------------

  private startHealing(): void {
    this.healing = true;
    this.record('healing: all faults cleared');
    this.net.healAll();
    this.net.faults = { ...this.net.faults, dropRate: 0, duplicateRate: 0 };
    for (const node of this.nodes.values()) {
      if (!node.up) this.restart(node);
      if (node.hung) this.resume(node);
    }
    // One probe write per group: liveness means it commits within the bound.
    for (const group of this.groupIds) this.queue.push(this.now + 1, { kind: 'client', node: 0, group, op: 'put', key: '', client: 0 });
    this.probeStart = this.now;
  }

  private probeStart = 0;
  private readonly probed = new Map<GroupId, { node: NodeId; term: number; index: number }>();

  /** Every group has a leader that committed a write after healing, and every member caught up. */
  private converged(): boolean {
    for (const group of this.groupIds) {
      const leader = this.currentLeader(group);
      if (!leader) return false;
      const raft = leader.mr.group(group)!;
      const probe = this.probed.get(group);
      if (!probe || probe.node !== leader.id || probe.term !== raft.term) {
        try {
          const index = raft.propose(encodeWrite({ id: 0, key: '_probe', value: 'p' }));
          this.probed.set(group, { node: leader.id, term: raft.term, index });
          this.schedule(leader);
        } catch {
          // Transfer pending; try again at the next event.
        }
        return false;
      }
      if (raft.log.committed < probe.index) return false;
      const commit = raft.log.committed;
      for (const id of [...raft.membership.voters, ...raft.membership.learners]) {
        const replica = this.nodes.get(id)!.replicas.get(group);
        if (!replica || replica.sm.applied < commit) return false;
      }
    }
    return true;
  }

  private describeGroups(): string {
    const parts: string[] = [];
    for (const group of this.groupIds) {
      const leader = this.currentLeader(group);
      const raft = leader?.mr.group(group);
      const members = [...this.nodes.values()]
        .filter((n) => n.replicas.has(group))
        .map((n) => {
          const g = n.mr.group(group);
          return `n${n.id}:${g?.role}/t${g?.term}/c${g?.log.committed}/l${g?.log.lastIndex()}/a${n.replicas.get(group)!.sm.applied}${n.up ? '' : '(down)'}`;
        });
      const progress = raft ? [...raft.status().progress].map(([id, p]) => `${id}:${p.state}/m${p.match}/n${p.next}`).join(',') : '';
      parts.push(`${group}[leader=${leader?.id} progress=${progress} first=${raft?.log.firstIndex()} probe=${this.probed.get(group)?.index} v=${raft?.membership.voters} l=${raft?.membership.learners} ${members.join(' ')}]`);
    }
    return parts.join(' ');
  }

  private finalChecks(): void {
    if (!this.converged()) {
      this.violation(`no convergence within ${HEAL_BOUND_MS} ms after healing: ${this.describeGroups()}`);
      return;
    }
    this.record(`converged ${(this.now - this.probeStart).toFixed(1)} ms after healing`);
    this.checkLogMatching();
    // Replicas that applied the same index hold the same state.
    for (const group of this.groupIds) {
      const leader = this.currentLeader(group)!;
      const raft = leader.mr.group(group)!;
      const ref = leader.replicas.get(group)!.sm;
      for (const id of [...raft.membership.voters, ...raft.membership.learners]) {
        const sm = this.nodes.get(id)!.replicas.get(group)!.sm;
        if (sm.applied === ref.applied && JSON.stringify([...sm.values].sort()) !== JSON.stringify([...ref.values].sort())) {
          this.violation(`${group} n${id} and n${leader.id} applied ${sm.applied} but hold different values`);
        }
      }
    }
    // A final read of every key from each group's leader, once everything converged: a lost
    // acknowledged write shows up as a stale final value.
    for (const group of this.groupIds) {
      const sm = this.currentLeader(group)!.replicas.get(group)!.sm;
      for (let k = 0; k < 6; k++) {
        this.history.push({ client: 0, key: `${group}/k${k}`, kind: 'get', value: sm.values.get(`k${k}`), call: this.now, ret: this.now + 1 });
      }
    }
    const history = this.history.filter((op) => op.ret !== -1).map((op) => (Number.isNaN(op.ret) ? { ...op, ret: op.kind === 'put' ? Infinity : -1 } : op));
    const result = checkHistory(history.filter((op) => op.ret !== -1));
    this.record(`history ${history.length} ops linearizable=${result.ok}`);
    if (!result.ok) this.violation(`history of ${result.key} is not linearizable: ${JSON.stringify(result.operations?.slice(0, 40))}`);
  }
}

function shuffle<T>(items: readonly T[], r: Random): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export function runSeed(options: SimOptions): SimResult {
  return new Simulation(options).run();
}
