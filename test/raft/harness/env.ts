/**
 * The interaction-test environment (after etcd-io/raft's rafttest): a few RaftGroups, a message
 * queue between them, and commands that a script drives step by step. Every observable effect
 * is printed, so a script's output is a golden trace of the protocol.
 */
import { MemoryStorage, RaftGroup, EntryType } from '../../../kernel/raft/index.js';
import type { Membership, Message, NodeId, Ready } from '../../../kernel/raft/index.js';
import { Random } from '../../sim/random.js';
import { formatMessage, formatReady } from './format.js';

interface Node {
  readonly id: NodeId;
  storage: MemoryStorage;
  /** What survives a crash: the storage as of the last processed Ready. */
  durable: MemoryStorage;
  group: RaftGroup;
  applied: string[];
  appliedIndex: number;
  crashed: boolean;
}

type Args = Map<string, string>;

const enc = new TextEncoder();
const dec = new TextDecoder();

export class InteractionEnv {
  private readonly nodes = new Map<NodeId, Node>();
  private queue: Message[] = [];
  private readonly cut = new Set<string>();
  private readonly random = new Random(1);
  private options: Args = new Map();
  private out: string[] = [];

  run(command: string, positional: string[], args: Args): string {
    this.out = [];
    switch (command) {
      case 'add-nodes':
        this.addNodes(Number(positional[0]), args);
        break;
      case 'campaign':
        this.node(positional[0]).group.campaign();
        break;
      case 'propose':
        this.guard(() => this.node(positional[0]).group.propose(enc.encode(positional[1] ?? '')));
        break;
      case 'propose-membership':
        this.guard(() => this.node(positional[0]).group.proposeMembership(parseMembership(args)));
        break;
      case 'transfer-leader':
        this.guard(() => this.node(positional[0]).group.transferLeader(Number(positional[1])));
        break;
      case 'abort-transfer':
        this.node(positional[0]).group.abortTransfer();
        break;
      case 'read-index':
        this.guard(() => this.node(positional[0]).group.readIndex(Number(positional[1])));
        break;
      case 'tick': {
        const n = Number(args.get('n') ?? 1);
        const ids = positional.length > 0 ? positional.map(Number) : [...this.nodes.keys()];
        for (let i = 0; i < n; i++) for (const id of ids) if (!this.node(id).crashed) this.node(id).group.tick();
        break;
      }
      case 'process-ready':
        for (const id of this.ids(positional)) this.processReady(this.node(id));
        break;
      case 'deliver':
        this.deliver(args);
        break;
      case 'drop':
        this.drop(args);
        break;
      case 'stabilize':
        this.stabilize(this.ids(positional));
        break;
      case 'partition':
        this.partition(positional);
        break;
      case 'heal':
        this.cut.clear();
        break;
      case 'compact':
        this.compact(this.node(positional[0]), Number(positional[1]));
        break;
      case 'crash':
        this.crash(this.node(positional[0]));
        break;
      case 'restart':
        this.restart(this.node(positional[0]));
        break;
      case 'status':
        for (const id of this.ids(positional)) this.status(this.node(id));
        break;
      case 'log':
        for (const id of this.ids(positional)) this.printLog(this.node(id));
        break;
      default:
        throw new Error(`unknown command ${command}`);
    }
    return this.out.join('\n');
  }

  private guard(fn: () => unknown): void {
    try {
      const r = fn();
      if (typeof r === 'number') this.out.push(`index ${r}`);
    } catch (err) {
      const e = err as { code?: string; message: string };
      this.out.push(`error ${e.code ?? 'Error'}: ${e.message}`);
    }
  }

  private ids(positional: string[]): NodeId[] {
    return positional.length > 0 ? positional.map(Number) : [...this.nodes.keys()].sort((a, b) => a - b);
  }

  private node(id: string | number | undefined): Node {
    const n = this.nodes.get(Number(id));
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  private addNodes(count: number, args: Args): void {
    this.options = args;
    const membership = parseMembership(args);
    const first = this.nodes.size + 1;
    for (let id = first; id < first + count; id++) {
      const storage = new MemoryStorage(args.has('empty') ? { voters: [], learners: [] } : membership);
      const node: Node = { id, storage, durable: storage.clone(), group: this.newGroup(id, storage, 0), applied: [], appliedIndex: 0, crashed: false };
      this.nodes.set(id, node);
    }
  }

  private newGroup(id: NodeId, storage: MemoryStorage, applied: number): RaftGroup {
    const flag = (name: string, dflt: boolean): boolean => (this.options.has(name) ? this.options.get(name) !== 'false' : dflt);
    return new RaftGroup({
      id,
      group: 'g',
      storage,
      random: () => this.random.next(),
      electionTicks: Number(this.options.get('election') ?? 10),
      heartbeatTicks: Number(this.options.get('heartbeat') ?? 1),
      preVote: flag('prevote', true),
      checkQuorum: flag('checkquorum', true),
      leaseReads: flag('lease', false),
      maxMsgBytes: Number(this.options.get('max-msg-bytes') ?? 1 << 20),
      maxInflight: Number(this.options.get('max-inflight') ?? 256),
      snapshotChunkBytes: Number(this.options.get('chunk') ?? 8),
      snapshotWindow: Number(this.options.get('window') ?? 2),
      applied,
    });
  }

  private processReady(node: Node): boolean {
    if (node.crashed || !node.group.hasReady()) return false;
    const rd = node.group.ready();
    this.out.push(...formatReady(node.id, rd));
    this.persist(node, rd);
    for (const m of [...rd.messages, ...rd.messagesAfterPersist]) {
      // A message sent across a cut link is lost at once, not held until the link heals.
      if (this.cut.has(`${m.from}-${m.to}`)) this.out.push(`dropped: ${formatMessage(m)}`);
      else this.queue.push(m);
    }
    for (const e of rd.committed) {
      if (e.index <= node.appliedIndex) continue;
      if (e.type === EntryType.Normal && e.data.byteLength > 0) node.applied.push(dec.decode(e.data));
      node.appliedIndex = e.index;
    }
    node.group.advance(rd);
    return true;
  }

  private persist(node: Node, rd: Ready): void {
    if (rd.snapshot) {
      node.storage.applySnapshot(rd.snapshot);
      node.applied = JSON.parse(dec.decode(rd.snapshot.data)) as string[];
      node.appliedIndex = rd.snapshot.meta.index;
    }
    node.storage.append(rd.entries);
    if (rd.hardState) node.storage.setHardState(rd.hardState);
    node.durable = node.storage.clone();
  }

  private deliverable(m: Message): boolean {
    return !this.cut.has(`${m.from}-${m.to}`) && !this.node(m.to).crashed;
  }

  private deliver(args: Args): void {
    const from = args.get('from');
    const to = args.get('to');
    const matches = (m: Message): boolean => (from === undefined || m.from === Number(from)) && (to === undefined || m.to === Number(to));
    const batch = this.queue.filter(matches);
    this.queue = this.queue.filter((m) => !matches(m));
    for (const m of batch) this.stepOne(m);
  }

  private stepOne(m: Message): void {
    if (!this.deliverable(m)) {
      this.out.push(`dropped: ${formatMessage(m)}`);
      return;
    }
    this.out.push(`deliver: ${formatMessage(m)}`);
    this.node(m.to).group.step(m);
  }

  private drop(args: Args): void {
    const from = args.get('from');
    const to = args.get('to');
    const matches = (m: Message): boolean => (from === undefined || m.from === Number(from)) && (to === undefined || m.to === Number(to));
    for (const m of this.queue.filter(matches)) this.out.push(`dropped: ${formatMessage(m)}`);
    this.queue = this.queue.filter((m) => !matches(m));
  }

  private stabilize(ids: NodeId[]): void {
    for (let round = 0; round < 1000; round++) {
      let progress = false;
      for (const id of ids) progress = this.processReady(this.node(id)) || progress;
      const batch = this.queue.filter((m) => ids.includes(m.to));
      this.queue = this.queue.filter((m) => !ids.includes(m.to));
      for (const m of batch) this.stepOne(m);
      if (!progress && batch.length === 0) return;
    }
    throw new Error('stabilize did not converge');
  }

  /** `partition 1 / 2 3`: cuts every link across the slash, both ways; `partition 1 -> 2` cuts one way. */
  private partition(positional: string[]): void {
    const arrow = positional.indexOf('->');
    if (arrow >= 0) {
      for (const a of positional.slice(0, arrow)) for (const b of positional.slice(arrow + 1)) this.cut.add(`${a}-${b}`);
      return;
    }
    const slash = positional.indexOf('/');
    const left = positional.slice(0, slash);
    const right = positional.slice(slash + 1);
    for (const a of left) {
      for (const b of right) {
        this.cut.add(`${a}-${b}`);
        this.cut.add(`${b}-${a}`);
      }
    }
  }

  private compact(node: Node, index: number): void {
    const term = node.storage.term(index)!;
    const meta = { index, term, membership: node.group.membershipAt(index) };
    const upTo = node.applied.slice(0, countApplied(node, index));
    node.storage.createSnapshot({ meta, data: enc.encode(JSON.stringify(upTo)) });
    node.durable = node.storage.clone();
    this.out.push(`snapshot ${term}/${index}, log now [${node.storage.firstIndex()}, ${node.storage.lastIndex()}]`);
  }

  private crash(node: Node): void {
    node.crashed = true;
    this.queue = this.queue.filter((m) => m.to !== node.id && m.from !== node.id);
  }

  private restart(node: Node): void {
    node.storage = node.durable.clone();
    const snap = node.storage.snapshot();
    node.applied = snap.meta.index > 0 ? (JSON.parse(dec.decode(snap.data)) as string[]) : [];
    node.appliedIndex = snap.meta.index;
    node.group = this.newGroup(node.id, node.storage, snap.meta.index);
    node.crashed = false;
    this.out.push(`restarted ${node.id}: term=${node.group.term} commit=${node.group.log.committed} last=${node.group.log.lastIndex()}`);
  }

  private status(node: Node): void {
    const s = node.group.status();
    this.out.push(
      `${node.id}: ${s.role} term=${s.term} leader=${s.leader} commit=${s.commit} applied=${s.applied} last=${s.lastIndex} ` +
        `v=[${s.membership.voters.join(',')}] l=[${s.membership.learners.join(',')}] applied-data=[${node.applied.join(',')}]`,
    );
    for (const [id, p] of s.progress) this.out.push(`  ${id}: ${p.state} match=${p.match} next=${p.next}${p.learner ? ' learner' : ''}`);
  }

  private printLog(node: Node): void {
    const g = node.group;
    const entries = g.log.slice(g.log.firstIndex(), g.log.lastIndex() + 1, Infinity) ?? [];
    this.out.push(`${node.id}: first=${g.log.firstIndex()} last=${g.log.lastIndex()} commit=${g.log.committed}`);
    for (const e of entries) this.out.push(`  ${e.term}/${e.index}${e.type === EntryType.Membership ? ' membership' : ''} "${dec.decode(e.data)}"`);
  }
}

/** How many applied values came from entries up to `index` (the snapshot's share of node.applied). */
function countApplied(node: Node, index: number): number {
  if (index > node.appliedIndex) throw new Error(`compact at ${index} past applied ${node.appliedIndex}`);
  return node.applied.length - countData(node, index + 1, node.appliedIndex);
}

function countData(node: Node, from: number, to: number): number {
  if (from > to) return 0;
  const entries = node.group.log.slice(from, to + 1, Infinity) ?? [];
  let n = 0;
  for (const e of entries) if (e.type === EntryType.Normal && e.data.byteLength > 0) n++;
  return n;
}

function parseMembership(args: Args): Membership {
  const list = (key: string): number[] => (args.get(key) ?? '').split(',').filter(Boolean).map(Number);
  return { voters: list('voters'), learners: list('learners') };
}
