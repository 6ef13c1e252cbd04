/**
 * The interaction-test environment for MultiRaft: nodes that each host many groups, node
 * messages between them (printed with their merged heartbeats), group create and destroy.
 */
import { MemoryStorage, MultiRaft, MESSAGE_TYPE_NAMES } from '../../../kernel/raft/index.js';
import type { Membership, NodeId, NodeMessage } from '../../../kernel/raft/index.js';
import { Random } from '../../sim/random.js';
import { formatMessage } from './format.js';

type Args = Map<string, string>;
const enc = new TextEncoder();

interface MNode {
  readonly id: NodeId;
  readonly mr: MultiRaft;
  readonly applied: Map<string, number>;
}

export class MultiEnv {
  private readonly nodes = new Map<NodeId, MNode>();
  private queue: NodeMessage[] = [];
  private readonly random = new Random(1);
  private out: string[] = [];
  private merge = true;

  run(command: string, positional: string[], args: Args): string {
    this.out = [];
    switch (command) {
      case 'add-nodes': {
        this.merge = args.get('merge') !== 'false';
        const count = Number(positional[0]);
        const first = this.nodes.size + 1;
        for (let id = first; id < first + count; id++) this.addNode(id, args);
        break;
      }
      case 'create-group': {
        const membership = parseMembership(args);
        for (const id of positional.slice(1).map(Number)) this.guard(() => this.node(id).mr.createGroup(positional[0]!, new MemoryStorage(membership)));
        break;
      }
      case 'create-groups': {
        const count = Number(positional[0]);
        const membership = parseMembership(args);
        for (let g = 0; g < count; g++) for (const id of membership.voters) this.node(id).mr.createGroup(`1.${g.toString(16)}`, new MemoryStorage(membership));
        break;
      }
      case 'destroy-group':
        this.guard(() => this.node(positional[1]).mr.destroyGroup(positional[0]!));
        break;
      case 'campaign':
        this.node(positional[0]).mr.group(positional[1]!)!.campaign();
        break;
      case 'campaign-all': {
        const mr = this.node(positional[0]).mr;
        for (const g of mr.groupIds()) mr.group(g)!.campaign();
        break;
      }
      case 'propose':
        this.guard(() => this.node(positional[0]).mr.group(positional[1]!)!.propose(enc.encode(positional[2] ?? '')));
        break;
      case 'propose-membership':
        this.guard(() => this.node(positional[0]).mr.group(positional[1]!)!.proposeMembership(parseMembership(args)));
        break;
      case 'tick': {
        const n = Number(args.get('n') ?? 1);
        for (let i = 0; i < n; i++) for (const node of this.nodes.values()) node.mr.tick();
        break;
      }
      case 'idle-rounds':
        // Heartbeat rounds with everything delivered in between, as time passes on idle nodes.
        for (let i = 0; i < Number(positional[0]); i++) {
          for (const node of this.nodes.values()) node.mr.tick();
          this.stabilize(true);
        }
        break;
      case 'stabilize':
        this.stabilize(args.get('quiet') === 'true');
        break;
      case 'status':
        for (const g of positional.slice(1)) {
          const s = this.node(positional[0]).mr.group(g)?.status();
          this.out.push(s ? `${positional[0]}/${g}: ${s.role} term=${s.term} leader=${s.leader} commit=${s.commit} v=[${s.membership.voters.join(',')}] l=[${s.membership.learners.join(',')}]` : `${positional[0]}/${g}: not hosted`);
        }
        break;
      case 'stats':
        for (const node of this.nodes.values()) {
          const s = node.mr.stats;
          this.out.push(`${node.id}: groups=${node.mr.size} node-messages=${s.nodeMessagesSent} raft-messages=${s.raftMessagesSent} rounds=${s.rounds}`);
        }
        break;
      default:
        throw new Error(`unknown command ${command}`);
    }
    return this.out.join('\n');
  }

  private addNode(id: NodeId, args: Args): void {
    const applied = new Map<string, number>();
    const mr = new MultiRaft({
      node: id,
      random: () => this.random.next(),
      send: (m) => this.queue.push(m),
      flush: () => Promise.resolve(),
      mergeHeartbeats: this.merge,
      groupOptions: { electionTicks: Number(args.get('election') ?? 10), heartbeatTicks: Number(args.get('heartbeat') ?? 1) },
      handler: {
        apply: (group, entries) => applied.set(group, entries[entries.length - 1]!.index),
        restore: () => undefined,
      },
    });
    this.nodes.set(id, { id, mr, applied });
  }

  private node(id: string | number | undefined): MNode {
    const n = this.nodes.get(Number(id));
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  private guard(fn: () => unknown): void {
    try {
      const r = fn();
      if (typeof r === 'number') this.out.push(`index ${r}`);
      else if (typeof r === 'object' && r !== null && 'group' in r) this.out.push('created');
    } catch (err) {
      const e = err as { code?: string; message: string };
      this.out.push(`error ${e.code ?? 'Error'}: ${e.message}`);
    }
  }

  private stabilize(quiet: boolean): void {
    for (let round = 0; round < 1000; round++) {
      let progress = false;
      for (const node of this.nodes.values()) {
        if (!node.mr.hasReady()) continue;
        node.mr.complete(node.mr.collect());
        progress = true;
      }
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (!quiet) this.out.push(...formatNodeMessage(m));
        this.node(m.to).mr.receive(m);
      }
      if (!progress && batch.length === 0) return;
    }
    throw new Error('stabilize did not converge');
  }
}

function formatNodeMessage(m: NodeMessage): string[] {
  const out = [`${m.from}->${m.to} node message: ${m.messages.length} raft, ${m.beats.length} beats, ${m.beatResponses.length} beat responses`];
  for (const r of m.messages) out.push(`  ${r.group} ${formatMessage(r)}${MESSAGE_TYPE_NAMES[r.type] ? '' : ''}`);
  if (m.beats.length > 0) out.push(`  beats: ${m.beats.map((b) => `${b.group}(t${b.term} c${b.commit} s${b.seq})`).join(' ')}`);
  if (m.beatResponses.length > 0) out.push(`  responses: ${m.beatResponses.map((b) => `${b.group}(t${b.term} s${b.seq} last${b.index})`).join(' ')}`);
  return out;
}

function parseMembership(args: Args): Membership {
  const list = (key: string): number[] => (args.get(key) ?? '').split(',').filter(Boolean).map(Number);
  return { voters: list('voters'), learners: list('learners') };
}
