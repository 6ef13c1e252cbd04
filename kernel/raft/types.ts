/**
 * The vocabulary of the raft core: entries, messages, hard state, membership, snapshots.
 * Plain data with stable shapes, so the hot path stays monomorphic and nothing is copied:
 * an Entry's `data` is the caller's buffer, shared by the log, every message and the store.
 */
import type { LogRecord } from '../contracts/store.js';

/** A raft node: in fastblock, an OSD id. 0 means "none". */
export type NodeId = number;
export const NONE: NodeId = 0;

/** A raft group: in fastblock, a PG id ("1.2a"). */
export type GroupId = string;

export const EntryType = {
  Normal: 0,
  /** `data` is an encoded Membership: the whole next configuration, not a delta. */
  Membership: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** A log entry. Structurally a LogRecord, so a DiskLog stores it as is. */
export interface Entry extends LogRecord {
  readonly index: number;
  readonly term: number;
  readonly type: number;
  readonly data: Uint8Array;
}

/** What must be durable before a node answers anyone: its term, its vote, and how far it knows the log is committed. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export const EMPTY_HARD_STATE: HardState = { term: 0, vote: NONE, commit: 0 };

/** A configuration: voters decide, learners only receive the log. Disjoint sets. */
export interface Membership {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export const EMPTY_MEMBERSHIP: Membership = { voters: [], learners: [] };

export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  /** The configuration in force at `index`. */
  readonly membership: Membership;
}

/** A state machine image at `meta.index`. `data` is opaque to raft. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

/** One bounded piece of a snapshot in flight; `offset` locates `data` in the whole image of `total` bytes. */
export interface SnapshotChunk {
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly total: number;
  readonly data: Uint8Array;
}

export const MessageType = {
  PreVote: 1,
  PreVoteResp: 2,
  Vote: 3,
  VoteResp: 4,
  App: 5,
  AppResp: 6,
  Heartbeat: 7,
  HeartbeatResp: 8,
  Snap: 9,
  SnapResp: 10,
  TimeoutNow: 11,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const MESSAGE_TYPE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(MessageType).map(([name, value]) => [value, name]),
);

/**
 * One raft message. Every field is always present (unused ones are 0/false/empty) so every
 * message has the same hidden class. Field meanings per type follow etcd-io/raft:
 *   App:        index/logTerm = the entry before `entries`; commit = leader commit.
 *   AppResp:    index = last matching index, or on reject the rejected index with
 *               hint/hintTerm = where the follower's log may match (fast backtracking).
 *   Heartbeat:  commit = min(follower match, leader commit); seq = heartbeat round (ReadIndex, lease).
 *   Vote/PreVote: index/logTerm = the candidate's last entry; force = leadership transfer.
 *   Snap:       snapshot = one chunk.  SnapResp: seq = bytes of the image received so far.
 */
export interface Message {
  type: MessageType;
  group: GroupId;
  from: NodeId;
  to: NodeId;
  term: number;
  logTerm: number;
  index: number;
  commit: number;
  entries: readonly Entry[];
  reject: boolean;
  hint: number;
  hintTerm: number;
  seq: number;
  force: boolean;
  snapshot: SnapshotChunk | undefined;
}

const NO_ENTRIES: readonly Entry[] = Object.freeze([]);

export function message(fields: Partial<Message> & Pick<Message, 'type' | 'to'>): Message {
  return {
    type: fields.type,
    group: fields.group ?? '',
    from: fields.from ?? NONE,
    to: fields.to,
    term: fields.term ?? 0,
    logTerm: fields.logTerm ?? 0,
    index: fields.index ?? 0,
    commit: fields.commit ?? 0,
    entries: fields.entries ?? NO_ENTRIES,
    reject: fields.reject ?? false,
    hint: fields.hint ?? 0,
    hintTerm: fields.hintTerm ?? 0,
    seq: fields.seq ?? 0,
    force: fields.force ?? false,
    snapshot: fields.snapshot,
  };
}

export const Role = {
  Follower: 'follower',
  PreCandidate: 'pre-candidate',
  Candidate: 'candidate',
  Leader: 'leader',
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** Volatile state the application may want to react to (who leads), reported when it changes. */
export interface SoftState {
  readonly leader: NodeId;
  readonly role: Role;
}

/** A ReadIndex answer: the read tagged `context` is linearizable once the state machine has applied `index`. */
export interface ReadState {
  readonly context: number;
  readonly index: number;
}
