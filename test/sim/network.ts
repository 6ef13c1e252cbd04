/**
 * The simulated network between nodes: every node message is delayed at random (so messages
 * reorder), may be dropped or duplicated, and never crosses a cut link. Links are cut one way,
 * so a symmetric partition is two cuts.
 */
import type { NodeId, NodeMessage } from '../../kernel/raft/index.js';
import type { Random } from './random.js';

export interface NetworkFaults {
  minDelayMs: number;
  maxDelayMs: number;
  dropRate: number;
  duplicateRate: number;
}

export class SimNetwork {
  private readonly cut = new Set<number>();
  sent = 0;
  dropped = 0;

  constructor(
    private readonly random: Random,
    public faults: NetworkFaults,
  ) {}

  private static link(from: NodeId, to: NodeId): number {
    return from * 1000 + to;
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(SimNetwork.link(from, to));
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cut.has(SimNetwork.link(from, to));
  }

  healAll(): void {
    this.cut.clear();
  }

  get cutCount(): number {
    return this.cut.size;
  }

  /** Delivery delays for one message: none when lost, two when duplicated. */
  deliveries(m: NodeMessage): number[] {
    this.sent++;
    if (this.isCut(m.from, m.to) || this.random.chance(this.faults.dropRate)) {
      this.dropped++;
      return [];
    }
    const delay = (): number => this.faults.minDelayMs + this.random.next() * (this.faults.maxDelayMs - this.faults.minDelayMs);
    return this.random.chance(this.faults.duplicateRate) ? [delay(), delay()] : [delay()];
  }
}
