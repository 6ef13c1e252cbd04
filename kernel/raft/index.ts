/**
 * The public API of the raft core. Everything a driver (the OSD's PG manager, tests, the
 * simulator, the benchmark) needs; the files behind it are free to change.
 */
export { RaftGroup } from './raft-group.js';
export type { RaftConfig, Ready, RaftStatus, ProgressStatus } from './raft-group.js';
export type { RaftStorage, RaftStorageWriter, InitialState } from './storage.js';
export { MemoryStorage } from './memory-storage.js';
export { encodeMembership, decodeMembership, validateChange, isVoter, isMember } from './membership.js';
export { ProgressState } from './progress.js';
export { EntryType, MessageType, MESSAGE_TYPE_NAMES, Role, NONE, EMPTY_HARD_STATE, EMPTY_MEMBERSHIP, message } from './types.js';
export type {
  Entry,
  GroupId,
  HardState,
  Membership,
  Message,
  NodeId,
  ReadState,
  Snapshot,
  SnapshotChunk,
  SnapshotMeta,
  SoftState,
} from './types.js';
export { MultiRaft } from './multi-raft.js';
export type { GroupHandler, GroupOptions, MultiRaftOptions, Round } from './multi-raft.js';
export type { Beat, BeatResponse, NodeMessage } from './node-message.js';
export { encodeNodeMessage, decodeNodeMessage } from './wire/codec.js';
export type { EncodedNodeMessage } from './wire/codec.js';
