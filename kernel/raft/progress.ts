/**
 * The leader's view of one follower (etcd-io/raft's Progress). States:
 *   probe      one AppendEntries at a time until the follower's match point is found;
 *   replicate  pipelined: `next` advances optimistically, bounded by the inflight window;
 *   snapshot   the follower is behind the log's first index; a snapshot streams in chunks.
 */
import { Inflights } from './inflights.js';
import type { Snapshot } from './types.js';

export const ProgressState = { Probe: 'probe', Replicate: 'replicate', Snapshot: 'snapshot' } as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** In probe state: one message is out, wait for its answer or a heartbeat response. */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** Highest heartbeat round this follower answered in the current term. */
  ackedSeq = 0;
  /** match when the last heartbeat round went out, to tell lost appends from slow ones. */
  matchAtHeartbeat = 0;
  /** Commit index last sent, so a commit advance is propagated even without new entries. */
  sentCommit = 0;
  /** The snapshot being streamed, and how much of it the follower confirmed / we sent. */
  snapshot: Snapshot | undefined;
  snapshotAcked = 0;
  snapshotSent = 0;
  readonly inflights: Inflights;

  constructor(
    next: number,
    maxInflight: number,
    public isLearner: boolean,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot && this.snapshot) {
      this.next = Math.max(this.match + 1, this.snapshot.meta.index + 1);
    } else {
      this.next = this.match + 1;
    }
    this.resetState(ProgressState.Probe);
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.resetState(ProgressState.Replicate);
  }

  becomeSnapshot(snapshot: Snapshot): void {
    this.resetState(ProgressState.Snapshot);
    this.snapshot = snapshot;
    this.snapshotAcked = 0;
    this.snapshotSent = 0;
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.snapshot = state === ProgressState.Snapshot ? this.snapshot : undefined;
    this.inflights.reset();
  }

  /** An acknowledgement up to n: returns false when it is stale. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejection of the append at `rejected`; `matchHint` is where the follower may match.
   * Returns false when the rejection is stale (answers an older message).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  /** Whether sending more must wait. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }
}
