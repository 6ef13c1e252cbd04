/**
 * One raft group as a pure state machine, in the shape of etcd-io/raft's RawNode: ticks,
 * messages and proposals go in; a Ready batch comes out (entries and hard state to persist,
 * messages to send, committed entries to apply, a snapshot to install, reads released), which
 * the driver handles and then acknowledges with advance(). No timers, I/O or randomness of its
 * own: time is tick(), randomness is config.random.
 *
 * Beyond the Raft paper it implements: pre-vote and check-quorum (thesis 9.6), pipelined
 * replication with per-follower flow control and fast backtracking, the leader persisting its
 * own entries in parallel with replication (thesis 10.2.1: its ack counts only once stable),
 * chunked InstallSnapshot, single-server membership changes applied when appended (thesis 4.1)
 * with a removed leader stepping down after commit, leadership transfer (thesis 3.10),
 * ReadIndex and lease reads (thesis 6.4).
 */
import { FastblockError, ErrorCode, assert } from '../errors.js';
import { RaftLog } from './log.js';
import { decodeMembership, encodeMembership, isVoter, normalize, validateChange } from './membership.js';
import { Progress, ProgressState } from './progress.js';
import { ReadOnly } from './read-only.js';
import type { RaftStorage } from './storage.js';
import { EntryType, MessageType, NONE, Role, message } from './types.js';
import type { Entry, GroupId, HardState, Membership, Message, NodeId, ReadState, Snapshot, SoftState } from './types.js';

export interface RaftConfig {
  readonly id: NodeId;
  readonly group: GroupId;
  readonly storage: RaftStorage;
  /** Uniform in [0, 1): the only randomness, used for election timeouts. */
  readonly random: () => number;
  /** A follower campaigns after a random timeout in [electionTicks, 2 * electionTicks). */
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  /** Serve reads from a lease (needs checkQuorum and clocks ticking at the same rate). */
  readonly leaseReads?: boolean;
  /** Heartbeats are sent only when the driver calls heartbeat() (MultiRaft aligns and merges them). */
  readonly externalHeartbeat?: boolean;
  /** Upper bound of entry bytes in one AppendEntries. */
  readonly maxMsgBytes?: number;
  /** AppendEntries in flight per follower. */
  readonly maxInflight?: number;
  /** Upper bound of committed entry bytes in one Ready. */
  readonly maxApplyBytes?: number;
  readonly snapshotChunkBytes?: number;
  /** Snapshot chunks in flight per follower. */
  readonly snapshotWindow?: number;
  /** Index the state machine has already applied (restart). */
  readonly applied?: number;
}

export interface Ready {
  readonly softState: SoftState | undefined;
  readonly hardState: HardState | undefined;
  /** Persist (after `snapshot`, if any). */
  readonly entries: readonly Entry[];
  /** A snapshot received from the leader: persist, then restore the state machine from it. */
  readonly snapshot: Snapshot | undefined;
  /** Apply in order, after entries and hard state are durable. */
  readonly committed: readonly Entry[];
  /** Send at once, in parallel with persisting (the leader's appends, heartbeats, pre-votes). */
  readonly messages: readonly Message[];
  /** Send only once this Ready's entries and hard state are durable (votes, acknowledgements). */
  readonly messagesAfterPersist: readonly Message[];
  readonly readStates: readonly ReadState[];
}

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly learner: boolean;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly group: GroupId;
  readonly role: Role;
  readonly leader: NodeId;
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly firstIndex: number;
  readonly membership: Membership;
  readonly leadTransferee: NodeId;
  readonly progress: ReadonlyMap<NodeId, ProgressStatus>;
}

interface StagedSnapshot {
  readonly meta: Snapshot['meta'];
  readonly parts: Uint8Array[];
  received: number;
}

const EMPTY = new Uint8Array(0);
/** Shared empty lists of a Ready (its lists are read-only to everyone). */
const NO_MESSAGES: readonly Message[] = [];
const NO_ENTRIES: readonly Entry[] = [];
const NO_READ_STATES: readonly ReadState[] = [];

/**
 * In place, largest first. Array.prototype.sort with a comparator copies the array into a work
 * area on every call; these arrays hold one value per voter and are sorted on every commit check.
 */
function sortDescending(values: number[], count: number): void {
  for (let i = 1; i < count; i++) {
    const v = values[i]!;
    let j = i - 1;
    while (j >= 0 && values[j]! < v) {
      values[j + 1] = values[j]!;
      j--;
    }
    values[j + 1] = v;
  }
}

export class RaftGroup {
  readonly id: NodeId;
  readonly group: GroupId;
  term = 0;
  vote: NodeId = NONE;
  leader: NodeId = NONE;
  role: Role = Role.Follower;
  readonly log: RaftLog;

  private readonly random: () => number;
  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly leaseReads: boolean;
  private readonly externalHeartbeat: boolean;
  private readonly maxMsgBytes: number;
  private readonly maxInflight: number;
  private readonly maxApplyBytes: number;
  private readonly chunkBytes: number;
  private readonly snapshotWindow: number;

  private membershipBase: Membership;
  /** Membership entries above the base, in log order; the last one is in force. */
  private confLog: { index: number; membership: Membership }[] = [];
  membership: Membership;
  private progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();

  /** Ticks since start: the group's clock. */
  private now = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;

  leadTransferee: NodeId = NONE;
  /** A TimeoutNow went out this term: a forced election may come at any time, so no lease. */
  private timeoutNowSent = false;

  /** Heartbeat rounds and what they prove: ReadIndex answers and the lease. */
  private readonly readOnly = new ReadOnly();

  private staged: StagedSnapshot | undefined;
  private msgs: Message[] = [];
  private msgsAfterPersist: Message[] = [];
  /** Appends or commit updates may be due to some follower. */
  private appendsDue = false;
  private prevSoft: SoftState;
  private prevHard: HardState;
  private readyOutstanding = false;
  private readonly matchScratch: number[] = [];
  /**
   * Called by every input (tick, step, proposals, reads, transfers, advance): the group may have a
   * Ready now. MultiRaft collects only the groups that had input since, not every hosted group.
   */
  onActivity: (() => void) | undefined = undefined;

  constructor(config: RaftConfig) {
    this.id = config.id;
    this.group = config.group;
    assert(this.id !== NONE, 'node id 0 is reserved');
    this.random = config.random;
    this.electionTicks = config.electionTicks ?? 10;
    this.heartbeatTicks = config.heartbeatTicks ?? 1;
    assert(this.heartbeatTicks < this.electionTicks, 'heartbeat interval below election timeout');
    this.preVote = config.preVote ?? true;
    this.checkQuorum = config.checkQuorum ?? true;
    this.leaseReads = config.leaseReads ?? false;
    assert(!this.leaseReads || this.checkQuorum, 'lease reads need check-quorum');
    this.externalHeartbeat = config.externalHeartbeat ?? false;
    this.maxMsgBytes = config.maxMsgBytes ?? 1 << 20;
    this.maxInflight = config.maxInflight ?? 256;
    this.maxApplyBytes = config.maxApplyBytes ?? 16 << 20;
    this.chunkBytes = config.snapshotChunkBytes ?? 256 << 10;
    this.snapshotWindow = config.snapshotWindow ?? 4;

    const storage = config.storage;
    const init = storage.initialState();
    this.log = new RaftLog(storage, init.hardState.commit, config.applied ?? 0);
    this.term = init.hardState.term;
    this.vote = init.hardState.vote;
    this.membershipBase = init.membership;
    this.membership = init.membership;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    if (last >= first) {
      for (const e of storage.entries(first, last + 1, Infinity)) {
        if (e.type === EntryType.Membership) this.confLog.push({ index: e.index, membership: decodeMembership(e.data) });
      }
    }
    this.applyMembership();
    this.becomeFollower(this.term, NONE);
    this.prevSoft = this.softState();
    this.prevHard = this.hardState();
  }

  // ---- inputs -------------------------------------------------------------------------------

  /** Advances the group's clock by one tick. */
  tick(): void {
    this.onActivity?.();
    this.now++;
    if (this.role === Role.Leader) this.tickLeader();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, NONE);
        return;
      }
      if (this.leadTransferee !== NONE) this.abortTransfer();
    }
    if (!this.externalHeartbeat && this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  /** Starts an election now (pre-vote first when enabled). */
  campaign(): void {
    this.onActivity?.();
    this.hup(false);
  }

  /** A heartbeat round to every follower; MultiRaft calls this for all leaders on one timer. */
  heartbeat(): void {
    this.onActivity?.();
    if (this.role === Role.Leader) this.broadcastHeartbeat();
  }

  /** Appends one proposal; returns its index. The entry is committed once it appears in Ready.committed. */
  propose(data: Uint8Array): number {
    this.onActivity?.();
    this.checkProposable();
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ index, term: this.term, type: EntryType.Normal, data }]);
    return index;
  }

  /** Appends many proposals as one batch; returns the first index. */
  proposeBatch(datas: readonly Uint8Array[]): number {
    this.onActivity?.();
    this.checkProposable();
    const first = this.log.lastIndex() + 1;
    const term = this.term;
    const entries = new Array<Entry>(datas.length);
    for (let i = 0; i < datas.length; i++) entries[i] = { index: first + i, term, type: EntryType.Normal, data: datas[i]! };
    this.appendEntries(entries);
    return first;
  }

  /**
   * Proposes the next configuration: at most one voter added or removed, learners freely. Refused
   * while a change is uncommitted, and until the leader has committed an entry of its own term
   * (the single-server pitfall: an old leader's uncommitted change must not combine with a new one).
   */
  proposeMembership(next: Membership): number {
    this.onActivity?.();
    this.checkProposable();
    validateChange(this.membership, next);
    const latest = this.confLog.length > 0 ? this.confLog[this.confLog.length - 1]!.index : 0;
    if (latest > this.log.committed) {
      throw new FastblockError(ErrorCode.BUSY, 'a membership change is still uncommitted', { group: this.group, index: latest });
    }
    if (this.log.term(this.log.committed) !== this.term) {
      throw new FastblockError(ErrorCode.BUSY, 'the leader has not committed an entry of its term yet', { group: this.group, term: this.term });
    }
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ index, term: this.term, type: EntryType.Membership, data: encodeMembership(normalize(next)) }]);
    return index;
  }

  /** Hands leadership to `to` once it is caught up; aborted after an election timeout. */
  transferLeader(to: NodeId): void {
    this.onActivity?.();
    this.checkLeader();
    if (to === this.id || to === this.leadTransferee) return;
    if (!isVoter(this.membership, to)) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'leadership goes only to a voter', { group: this.group, to });
    }
    this.abortTransfer();
    this.leadTransferee = to;
    this.electionElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.appendsDue = true;
  }

  abortTransfer(): void {
    this.onActivity?.();
    this.leadTransferee = NONE;
  }

  /**
   * Asks for a linearizable read point. The answer comes in Ready.readStates as (context, index):
   * serve the read once the state machine has applied index. Lease reads answer at once while
   * the lease holds; otherwise a heartbeat round must reach a quorum (ReadIndex).
   */
  readIndex(context: number): void {
    this.onActivity?.();
    this.checkLeader();
    if (this.log.term(this.log.committed) !== this.term) {
      this.readOnly.awaitCommit(context);
      return;
    }
    const index = this.log.committed;
    if ((this.quorum() === 1 && isVoter(this.membership, this.id)) || this.leaseValid()) this.readOnly.release(context, index);
    else this.readOnly.awaitRound(context, index);
  }

  /** Whether a read may be served from the lease right now. */
  leaseValid(): boolean {
    return (
      this.leaseReads &&
      this.role === Role.Leader &&
      this.leadTransferee === NONE &&
      !this.timeoutNowSent &&
      this.readOnly.leaseHolds(this.now, this.electionTicks)
    );
  }

  /** The configuration in force at `index` (for the metadata of a snapshot taken there); index >= the last snapshot's. */
  membershipAt(index: number): Membership {
    let m = this.membershipBase;
    for (const c of this.confLog) {
      if (c.index > index) break;
      m = c.membership;
    }
    return m;
  }

  step(m: Message): void {
    this.onActivity?.();
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        // A follower that hears from a live leader ignores disruptive candidates (check-quorum),
        // unless leadership is being handed over on purpose.
        if (!m.force && this.inLease()) return;
      }
      if (m.type === MessageType.PreVote) {
        // Never changes our term.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // Granted pre-votes carry the future term we asked for.
      } else {
        const fromLeader = m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
        this.becomeFollower(m.term, fromLeader ? m.from : NONE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.App || m.type === MessageType.Heartbeat)) {
        // Tells a stale leader (e.g. one partitioned away) about the newer term.
        this.respond(m.from, MessageType.AppResp, {});
      } else if (m.type === MessageType.PreVote) {
        this.respond(m.from, MessageType.PreVoteResp, { reject: true });
      }
      return;
    }

    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(m);
        break;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        break;
      case Role.Follower:
        this.stepFollower(m);
        break;
    }
  }

  // ---- output -------------------------------------------------------------------------------

  hasReady(): boolean {
    if (this.readyOutstanding) return false;
    // Sending what is due is deterministic and idempotent; doing it here keeps empty Readies out.
    if (this.appendsDue || this.readOnly.roundNeeded) this.flush();
    if (this.msgs.length > 0 || this.msgsAfterPersist.length > 0 || this.readOnly.hasReleased()) return true;
    if (this.log.unstableEntries().length > 0 || this.log.pendingSnapshot !== undefined) return true;
    if (this.log.hasNextCommitted()) return true;
    const hs = this.prevHard;
    if (hs.term !== this.term || hs.vote !== this.vote || hs.commit !== this.log.committed) return true;
    const ss = this.prevSoft;
    return ss.leader !== this.leader || ss.role !== this.role;
  }

  ready(): Ready {
    assert(!this.readyOutstanding, 'ready() again before advance()');
    this.flush();
    // Only what changed is allocated: most Readies of a busy group carry entries and messages,
    // not a new soft or hard state, and many have no reads or no messages of one kind.
    const ss = this.prevSoft;
    const hs = this.prevHard;
    const soft = ss.leader !== this.leader || ss.role !== this.role ? this.softState() : undefined;
    const hard = hs.term !== this.term || hs.vote !== this.vote || hs.commit !== this.log.committed ? this.hardState() : undefined;
    const unstable = this.log.unstableEntries();
    const messages = this.msgs.length > 0 ? this.msgs : NO_MESSAGES;
    const messagesAfterPersist = this.msgsAfterPersist.length > 0 ? this.msgsAfterPersist : NO_MESSAGES;
    const rd: Ready = {
      softState: soft,
      hardState: hard,
      entries: unstable.length > 0 ? unstable.slice() : NO_ENTRIES,
      snapshot: this.log.pendingSnapshot,
      committed: this.log.nextCommitted(this.maxApplyBytes),
      messages,
      messagesAfterPersist,
      readStates: this.readOnly.hasReleased() ? this.readOnly.takeReleased() : NO_READ_STATES,
    };
    if (messages !== NO_MESSAGES) this.msgs = [];
    if (messagesAfterPersist !== NO_MESSAGES) this.msgsAfterPersist = [];
    if (soft) this.prevSoft = soft;
    if (hard) this.prevHard = hard;
    this.readyOutstanding = true;
    return rd;
  }

  /** The driver persisted, sent and applied `rd`. */
  advance(rd: Ready): void {
    this.onActivity?.();
    assert(this.readyOutstanding, 'advance() without ready()');
    this.readyOutstanding = false;
    if (rd.snapshot) {
      this.log.stableSnapshotTo(rd.snapshot.meta.index);
      this.log.applied = Math.max(this.log.applied, rd.snapshot.meta.index);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      if (this.log.stableTo(last.index, last.term) && this.role === Role.Leader) {
        // The leader's own durable append counts toward the quorum only now.
        if (this.progress.get(this.id)?.maybeUpdate(last.index)) this.maybeCommit();
      }
    }
    if (rd.committed.length > 0) {
      const last = rd.committed[rd.committed.length - 1]!.index;
      if (last > this.log.applied) this.log.appliedTo(last);
    }
  }

  /**
   * Leading: the highest index every other member (voter or learner) is known to hold durably,
   * the lowest of their matches (the last index when there is no other member); undefined when
   * not leading. The log before it is needed by no replica that keeps up.
   */
  replicatedIndex(): number | undefined {
    if (this.role !== Role.Leader) return undefined;
    let lowest = this.log.lastIndex();
    for (const [id, pr] of this.progress) if (id !== this.id && pr.match < lowest) lowest = pr.match;
    return lowest;
  }

  status(): RaftStatus {
    const progress = new Map<NodeId, ProgressStatus>();
    if (this.role === Role.Leader) {
      for (const [id, pr] of this.progress) progress.set(id, { match: pr.match, next: pr.next, state: pr.state, learner: pr.isLearner });
    }
    return {
      id: this.id,
      group: this.group,
      role: this.role,
      leader: this.leader,
      term: this.term,
      vote: this.vote,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      membership: this.membership,
      leadTransferee: this.leadTransferee,
      progress,
    };
  }

  softState(): SoftState {
    return { leader: this.leader, role: this.role };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  // ---- roles --------------------------------------------------------------------------------

  private promotable(): boolean {
    return isVoter(this.membership, this.id) && this.log.pendingSnapshot === undefined;
  }

  private inLease(): boolean {
    if (!this.checkQuorum) return false;
    if (this.leader !== NONE && this.electionElapsed < this.electionTicks) return true;
    // A node that restarts may have acknowledged a lease it no longer remembers: it stays quiet
    // for one election timeout before voting.
    return this.leaseReads && this.now < this.electionTicks;
  }

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NONE;
    }
    this.leader = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTicks + Math.floor(this.random() * this.electionTicks);
    this.abortTransfer();
    this.timeoutNowSent = false;
    this.votes.clear();
    this.readOnly.reset();
    this.appendsDue = false;
    this.rebuildProgress(true);
  }

  private rebuildProgress(fresh: boolean): void {
    const next = this.log.lastIndex() + 1;
    const old = this.progress;
    this.progress = new Map();
    for (const id of [...this.membership.voters, ...this.membership.learners, this.id]) {
      if (this.progress.has(id)) continue;
      const learner = !isVoter(this.membership, id);
      let pr = fresh ? undefined : old.get(id);
      if (pr) pr.isLearner = learner;
      else {
        pr = new Progress(next, this.maxInflight, learner);
        if (id === this.id) pr.match = this.stableLastIndex();
      }
      this.progress.set(id, pr);
    }
  }

  /** The last index known durable here with the term it has now. */
  private stableLastIndex(): number {
    if (this.log.pendingSnapshot) return 0;
    const unstable = this.log.unstableEntries();
    return unstable.length > 0 ? unstable[0]!.index - 1 : this.log.lastIndex();
  }

  private becomeFollower(term: number, leader: NodeId): void {
    this.reset(term);
    this.role = Role.Follower;
    this.leader = leader;
  }

  private becomePreCandidate(): void {
    // No term change and no vote: a pre-election is harmless to the cluster when it fails.
    this.role = Role.PreCandidate;
    this.votes.clear();
    this.leader = NONE;
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = Role.Leader;
    this.leader = this.id;
    for (const [id, pr] of this.progress) if (id === this.id) pr.becomeReplicate();
    // An entry of the new term: commits everything before it and unlocks membership changes.
    this.appendEntries([{ index: this.log.lastIndex() + 1, term: this.term, type: EntryType.Normal, data: EMPTY }]);
  }

  private hup(transfer: boolean): void {
    if (this.role === Role.Leader || !this.promotable()) return;
    if (this.preVote && !transfer) this.runElection(MessageType.PreVote, false);
    else this.runElection(MessageType.Vote, transfer);
  }

  private runElection(type: typeof MessageType.PreVote | typeof MessageType.Vote, transfer: boolean): void {
    let voteTerm: number;
    if (type === MessageType.PreVote) {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      if (type === MessageType.PreVote) this.runElection(MessageType.Vote, false);
      else this.becomeLeader();
      return;
    }
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    for (const id of this.membership.voters) {
      if (id === this.id) continue;
      const m = message({ type, group: this.group, from: this.id, to: id, term: voteTerm, index, logTerm, force: transfer });
      // A vote request carries a term and vote that must be durable first; a pre-vote does not.
      if (type === MessageType.PreVote) this.msgs.push(m);
      else this.msgsAfterPersist.push(m);
    }
  }

  private poll(id: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const voter of this.membership.voters) {
      const v = this.votes.get(voter);
      if (v === true) yes++;
      else if (v === false) no++;
    }
    const q = this.quorum();
    if (yes >= q) return 'won';
    if (no > this.membership.voters.length - q) return 'lost';
    return 'pending';
  }

  private quorum(): number {
    return (this.membership.voters.length >> 1) + 1;
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.membership.voters) {
      const pr = this.progress.get(id);
      if (id === this.id || pr?.recentActive) active++;
    }
    for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
    return active >= this.quorum();
  }

  // ---- message handling ---------------------------------------------------------------------

  private handleVoteRequest(m: Message): void {
    const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
    // A replica that knows no configuration is waiting to be added (or was removed and came back
    // empty): its empty log would make any candidate look up to date, so a stale node whose old
    // configuration still lists it could win with its vote and overwrite what the current
    // configuration committed. It votes once the leader has sent it a log.
    if (this.membership.voters.length === 0 && this.membership.learners.length === 0) {
      this.respond(m.from, respType, { reject: true });
      return;
    }
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.leader === NONE) ||
      (m.type === MessageType.PreVote && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.respond(m.from, respType, { term: m.term });
      if (m.type === MessageType.Vote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.respond(m.from, respType, { reject: true });
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleAppend(m);
        break;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleHeartbeat(m);
        break;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleSnapshot(m);
        break;
      case MessageType.TimeoutNow:
        this.hup(true);
        break;
      default:
        break;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        break;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        break;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        break;
      case MessageType.PreVoteResp:
      case MessageType.VoteResp: {
        const expected = this.role === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
        if (m.type !== expected) break;
        const result = this.poll(m.from, !m.reject);
        if (result === 'won') {
          if (this.role === Role.PreCandidate) this.runElection(MessageType.Vote, false);
          else this.becomeLeader();
        } else if (result === 'lost') {
          this.becomeFollower(this.term, NONE);
        }
        break;
      }
      default:
        break;
    }
  }

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    if (!pr || m.from === this.id) return;
    switch (m.type) {
      case MessageType.AppResp:
        pr.recentActive = true;
        this.handleAppendResponse(m, pr);
        break;
      case MessageType.HeartbeatResp:
        pr.recentActive = true;
        pr.probeSent = false;
        if (pr.state === ProgressState.Snapshot) pr.snapshotSent = pr.snapshotAcked;
        // No acknowledged progress over a whole heartbeat round while behind: appends or their
        // acknowledgements were lost (and may fill the window). Probe again from the match point.
        if (pr.state === ProgressState.Replicate && pr.match === pr.matchAtHeartbeat && pr.match < this.log.lastIndex()) pr.becomeProbe();
        if (pr.match < this.log.lastIndex() || pr.state === ProgressState.Snapshot) this.appendsDue = true;
        if (m.seq > pr.ackedSeq) {
          pr.ackedSeq = m.seq;
          this.advanceQuorumSeq();
        }
        break;
      case MessageType.SnapResp:
        pr.recentActive = true;
        if (pr.state !== ProgressState.Snapshot || pr.snapshot?.meta.index !== m.index) break;
        if (m.reject) {
          pr.snapshotAcked = m.seq;
          pr.snapshotSent = m.seq;
        } else {
          pr.snapshotAcked = Math.max(pr.snapshotAcked, m.seq);
        }
        this.appendsDue = true;
        break;
      default:
        break;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    if (m.reject) {
      let hint = m.hint;
      if (m.hintTerm > 0) hint = this.log.findConflictByTerm(m.hint, m.hintTerm).index;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.appendsDue = true;
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) {
      if (pr.state === ProgressState.Probe && !pr.probeSent) this.appendsDue = true;
      return;
    }
    switch (pr.state) {
      case ProgressState.Probe:
        pr.becomeReplicate();
        break;
      case ProgressState.Snapshot:
        if (pr.snapshot && pr.match >= pr.snapshot.meta.index) pr.becomeReplicate();
        break;
      case ProgressState.Replicate:
        pr.inflights.freeTo(m.index);
        break;
    }
    if (wasPaused || pr.next <= this.log.lastIndex()) this.appendsDue = true;
    this.maybeCommit();
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      this.respond(m.from, MessageType.AppResp, { index: this.log.committed });
      return;
    }
    if (!this.log.matchTerm(m.index, m.logTerm)) {
      const probe = Math.min(m.index, this.log.lastIndex());
      const hint = this.log.findConflictByTerm(probe, m.logTerm);
      this.respond(m.from, MessageType.AppResp, { index: m.index, reject: true, hint: hint.index, hintTerm: hint.term });
      return;
    }
    const entries = m.entries;
    const lastNew = m.index + entries.length;
    const conflict = this.log.findConflict(entries);
    if (conflict < entries.length) {
      const first = entries[conflict]!.index;
      if (first <= this.log.committed) assert(false, `entry ${first} conflicts with the committed log`);
      this.appendToLog(conflict === 0 ? entries : entries.slice(conflict));
    }
    this.log.commitTo(Math.min(m.commit, lastNew));
    this.respond(m.from, MessageType.AppResp, { index: lastNew });
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(our match, its commit), so the entries are here and match.
    if (m.commit <= this.log.lastIndex()) this.log.commitTo(m.commit);
    this.respond(m.from, MessageType.HeartbeatResp, { seq: m.seq, index: this.log.lastIndex() });
  }

  private handleSnapshot(m: Message): void {
    const chunk = m.snapshot;
    if (!chunk) return;
    const meta = chunk.meta;
    if (meta.index <= this.log.committed) {
      this.staged = undefined;
      this.respond(m.from, MessageType.AppResp, { index: this.log.committed });
      return;
    }
    if (this.staged === undefined || this.staged.meta.index !== meta.index || this.staged.meta.term !== meta.term) {
      if (chunk.offset !== 0) {
        this.respond(m.from, MessageType.SnapResp, { index: meta.index, seq: 0, reject: true });
        return;
      }
      this.staged = { meta, parts: [], received: 0 };
    }
    const staged = this.staged;
    if (chunk.offset !== staged.received) {
      this.respond(m.from, MessageType.SnapResp, { index: meta.index, seq: staged.received, reject: true });
      return;
    }
    staged.parts.push(chunk.data);
    staged.received += chunk.data.byteLength;
    if (staged.received < chunk.total) {
      this.respond(m.from, MessageType.SnapResp, { index: meta.index, seq: staged.received });
      return;
    }
    this.staged = undefined;
    const data = staged.parts.length === 1 ? staged.parts[0]! : Buffer.concat(staged.parts);
    this.restore({ meta, data });
    this.respond(m.from, MessageType.AppResp, { index: meta.index });
  }

  private restore(snapshot: Snapshot): void {
    const meta = snapshot.meta;
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We already hold the snapshot's last entry: the log stays, it is just committed.
      this.log.commitTo(meta.index);
      return;
    }
    this.log.restore(snapshot);
    this.membershipBase = meta.membership;
    this.confLog = [];
    this.applyMembership();
  }

  private respond(to: NodeId, type: MessageType, fields: Partial<Message>): void {
    this.msgsAfterPersist.push(message({ term: this.term, ...fields, type, group: this.group, from: this.id, to }));
  }

  // ---- leader -------------------------------------------------------------------------------

  private checkLeader(): void {
    if (this.role !== Role.Leader) {
      throw new FastblockError(ErrorCode.NOT_LEADER, 'not the leader of this group', { group: this.group, leaderHint: this.leader });
    }
  }

  private checkProposable(): void {
    this.checkLeader();
    if (this.leadTransferee !== NONE) {
      throw new FastblockError(ErrorCode.BUSY, 'leadership is being transferred', { group: this.group, to: this.leadTransferee });
    }
  }

  private appendEntries(entries: Entry[]): void {
    this.appendToLog(entries);
    this.appendsDue = true;
  }

  /** Appends to the log, tracking membership entries (a configuration is in force once appended). */
  private appendToLog(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    let changed = false;
    while (this.confLog.length > 0 && this.confLog[this.confLog.length - 1]!.index >= first) {
      this.confLog.pop();
      changed = true;
    }
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.type === EntryType.Membership) {
        this.confLog.push({ index: e.index, membership: decodeMembership(e.data) });
        changed = true;
      }
    }
    this.log.append(entries);
    if (changed) this.applyMembership();
  }

  private applyMembership(): void {
    // Fold changes the log no longer holds into the base, so confLog stays short while
    // membershipAt stays right for every index a snapshot may still be taken at.
    const compacted = this.log.firstIndex() - 1;
    while (this.confLog.length > 1 && this.confLog[1]!.index <= compacted) this.membershipBase = this.confLog.shift()!.membership;
    this.membership = this.confLog.length > 0 ? this.confLog[this.confLog.length - 1]!.membership : this.membershipBase;
    if (this.role === Role.Leader) {
      this.rebuildProgress(false);
      this.appendsDue = true;
      if (this.leadTransferee !== NONE && !isVoter(this.membership, this.leadTransferee)) this.abortTransfer();
    }
  }

  private maybeCommit(): boolean {
    const voters = this.membership.voters;
    // Written by index over what earlier calls left (no length reset: that drops the backing store).
    const matches = this.matchScratch;
    const n = voters.length;
    for (let i = 0; i < n; i++) matches[i] = this.progress.get(voters[i]!)?.match ?? 0;
    if (n === 0) return false;
    sortDescending(matches, n);
    const index = matches[this.quorum() - 1]!;
    if (index <= this.log.committed || this.log.term(index) !== this.term) return false;
    this.log.commitTo(index);
    for (const context of this.readOnly.takeAwaitingCommit()) this.readIndex(context);
    this.maybeStepDownRemoved();
    return true;
  }

  /** A leader removed from the voters steps down once that change is committed, handing over at once. */
  private maybeStepDownRemoved(): void {
    if (isVoter(this.membership, this.id)) return;
    const latest = this.confLog.length > 0 ? this.confLog[this.confLog.length - 1]!.index : 0;
    if (latest > this.log.committed) return;
    let best: NodeId = NONE;
    let bestMatch = -1;
    for (const id of this.membership.voters) {
      const match = this.progress.get(id)?.match ?? 0;
      if (match > bestMatch) {
        best = id;
        bestMatch = match;
      }
    }
    this.flush();
    if (best !== NONE && bestMatch === this.log.lastIndex()) this.sendTimeoutNow(best);
    this.becomeFollower(this.term, NONE);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.timeoutNowSent = true;
    this.msgs.push(message({ type: MessageType.TimeoutNow, group: this.group, from: this.id, to, term: this.term }));
  }

  private broadcastHeartbeat(): void {
    const seq = this.readOnly.startRound(this.now);
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      pr.matchAtHeartbeat = pr.match;
      this.msgs.push(
        message({
          type: MessageType.Heartbeat,
          group: this.group,
          from: this.id,
          to: id,
          term: this.term,
          commit: Math.min(pr.match, this.log.committed),
          seq,
        }),
      );
    }
    if (this.quorum() === 1 && isVoter(this.membership, this.id)) this.advanceQuorumSeq();
  }

  /** Confirms the newest heartbeat round a quorum answered (releasing reads, extending the lease). */
  private advanceQuorumSeq(): void {
    const voters = this.membership.voters;
    const acked = this.matchScratch;
    const n = voters.length;
    for (let i = 0; i < n; i++) {
      const id = voters[i]!;
      acked[i] = id === this.id ? this.readOnly.seq : (this.progress.get(id)?.ackedSeq ?? 0);
    }
    sortDescending(acked, n);
    const q = this.quorum() - 1;
    this.readOnly.confirm(q < n ? acked[q]! : 0);
  }

  /** Sends what each follower is due: entries, a commit update, or snapshot chunks. */
  private flush(): void {
    if (this.role === Role.Leader && this.readOnly.roundNeeded) this.broadcastHeartbeat();
    if (!this.appendsDue) return;
    this.appendsDue = false;
    if (this.role !== Role.Leader) return;
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      if (pr.state === ProgressState.Snapshot) this.sendSnapshotChunks(id, pr);
      else while (this.sendAppend(id, pr));
    }
  }

  /** One AppendEntries if due and allowed; returns whether another could follow. */
  private sendAppend(to: NodeId, pr: Progress): boolean {
    if (pr.isPaused()) return false;
    const last = this.log.lastIndex();
    // A follower in step with us learns a new commit index from the next append or heartbeat:
    // an append of its own (and the acknowledgement it draws) would double the messages per write.
    if (pr.next > last && (pr.state === ProgressState.Replicate || pr.sentCommit >= this.log.committed)) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries = prevTerm === undefined ? undefined : this.log.slice(pr.next, last + 1, this.maxMsgBytes);
    if (prevTerm === undefined || entries === undefined) {
      // The follower needs entries we compacted: stream the snapshot.
      if (!pr.recentActive && pr.match > 0) return false;
      pr.becomeSnapshot(this.log.snapshot());
      this.sendSnapshotChunks(to, pr);
      return false;
    }
    const commit = this.log.committed;
    this.msgs.push(
      message({ type: MessageType.App, group: this.group, from: this.id, to, term: this.term, index: prevIndex, logTerm: prevTerm, entries, commit }),
    );
    pr.sentCommit = commit;
    if (pr.state === ProgressState.Replicate) {
      if (entries.length === 0) return false;
      const lastSent = entries[entries.length - 1]!.index;
      pr.next = lastSent + 1;
      pr.inflights.add(lastSent);
      return pr.next <= last;
    }
    pr.probeSent = true;
    return false;
  }

  private sendSnapshotChunks(to: NodeId, pr: Progress): void {
    const snap = pr.snapshot;
    if (!snap) return;
    const total = snap.data.byteLength;
    const window = this.chunkBytes * this.snapshotWindow;
    if (total === 0) {
      if (pr.probeSent) return;
      pr.probeSent = true;
    }
    do {
      const offset = pr.snapshotSent;
      if (total > 0 && (offset >= total || offset - pr.snapshotAcked >= window)) return;
      const data = snap.data.subarray(offset, Math.min(total, offset + this.chunkBytes));
      this.msgs.push(
        message({
          type: MessageType.Snap,
          group: this.group,
          from: this.id,
          to,
          term: this.term,
          snapshot: { meta: snap.meta, offset, total, data },
        }),
      );
      pr.snapshotSent = offset + data.byteLength;
    } while (total > 0);
  }
}

