/**
 * What a leader's heartbeat rounds prove (thesis 6.4). Every round has a sequence number; once a
 * quorum has answered round s, the leader was still leader when round s went out, which
 *   - releases every ReadIndex read that was waiting for a round >= s (it is linearizable at
 *     the commit index it recorded), and
 *   - starts a lease at the tick round s went out: no other leader can be elected before an
 *     election timeout has passed since then.
 * Reset at every term: rounds, reads and lease belong to one leadership.
 */
import type { ReadState } from './types.js';

interface PendingRead {
  readonly context: number;
  readonly index: number;
  readonly seq: number;
}

export class ReadOnly {
  /** The last round started. */
  seq = 0;
  /** A read waits for a round that has not gone out yet. */
  roundNeeded = false;
  private confirmed = 0;
  private rounds: { seq: number; tick: number }[] = [];
  private leaseStart = -Infinity;
  private pending: PendingRead[] = [];
  private waitingForCommit: number[] = [];
  private released: ReadState[] = [];

  reset(): void {
    this.seq = 0;
    this.confirmed = 0;
    this.rounds = [];
    this.leaseStart = -Infinity;
    this.roundNeeded = false;
    this.pending = [];
    this.waitingForCommit = [];
  }

  startRound(now: number): number {
    const seq = ++this.seq;
    this.rounds.push({ seq, tick: now });
    this.roundNeeded = false;
    return seq;
  }

  /** A read answered at once (lease, or a single voter). */
  release(context: number, index: number): void {
    this.released.push({ context, index });
  }

  /** A read at `index` that the next round will confirm. */
  awaitRound(context: number, index: number): void {
    this.pending.push({ context, index, seq: this.seq + 1 });
    this.roundNeeded = true;
  }

  /** A read that must wait until the leader has committed an entry of its term. */
  awaitCommit(context: number): void {
    this.waitingForCommit.push(context);
  }

  takeAwaitingCommit(): number[] {
    const waiting = this.waitingForCommit;
    this.waitingForCommit = [];
    return waiting;
  }

  /** A quorum answered every round up to `seq`. */
  confirm(seq: number): void {
    if (seq <= this.confirmed) return;
    this.confirmed = seq;
    while (this.rounds.length > 0 && this.rounds[0]!.seq <= seq) this.leaseStart = this.rounds.shift()!.tick;
    let n = 0;
    while (n < this.pending.length && this.pending[n]!.seq <= seq) {
      const r = this.pending[n++]!;
      this.released.push({ context: r.context, index: r.index });
    }
    if (n > 0) this.pending.splice(0, n);
  }

  /**
   * Whether the lease holds at `now`: a round a quorum confirmed went out less than an election
   * timeout ago, minus a margin of two ticks for clocks that tick at slightly different rates.
   */
  leaseHolds(now: number, electionTicks: number): boolean {
    return now < this.leaseStart + electionTicks - 2;
  }

  hasReleased(): boolean {
    return this.released.length > 0;
  }

  takeReleased(): ReadState[] {
    const out = this.released;
    this.released = [];
    return out;
  }
}
