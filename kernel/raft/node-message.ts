/**
 * What one node sends another in one go: every group's raft messages for that node from one
 * processing round, plus the merged heartbeats. A merged heartbeat carries each group's
 * (group, term, commit, seq) and is answered by one message carrying each group's answer, so two
 * idle nodes exchange one message pair per heartbeat interval however many groups they share.
 */
import type { GroupId, Message, NodeId } from './types.js';

export interface Beat {
  readonly group: GroupId;
  readonly term: number;
  readonly commit: number;
  readonly seq: number;
}

export interface BeatResponse {
  readonly group: GroupId;
  readonly term: number;
  readonly seq: number;
  /** The follower's last index (lost-append detection). */
  readonly index: number;
}

export interface NodeMessage {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly messages: readonly Message[];
  readonly beats: readonly Beat[];
  readonly beatResponses: readonly BeatResponse[];
}
