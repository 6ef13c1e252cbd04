/**
 * MultiRaft: every raft group of one shard, driven together. One tick() ticks every group and,
 * every heartbeat interval, starts a heartbeat round on every leader, so rounds are aligned and
 * merge. One processing round collects the Ready of every group, writes all of them to storage
 * and makes them durable with one flush, then sends, applies and advances: a group commit for
 * raft. Outbound messages are grouped per destination node, heartbeats merged.
 *
 * The round is split in two so a simulator can crash a node between them:
 *   collect()   readies gathered, immediate messages sent, writes issued (not yet durable);
 *   complete()  after the flush: acknowledgements sent, entries applied, groups advanced.
 * process() does both around the storage flush.
 */
import { FastblockError, ErrorCode, assert } from '../errors.js';
import { RaftGroup } from './raft-group.js';
import type { RaftConfig, Ready } from './raft-group.js';
import type { RaftStorageWriter } from './storage.js';
import { MessageType, Role, message } from './types.js';
import type { Entry, GroupId, Message, NodeId, ReadState, Snapshot, SoftState } from './types.js';
import type { Beat, BeatResponse, NodeMessage } from './node-message.js';

/** The application side of the groups: what committed entries, snapshots and reads mean. */
export interface GroupHandler {
  /** Committed entries of one group, in order (Normal and Membership). Apply them in this order. */
  apply(group: GroupId, entries: readonly Entry[]): void;
  /** Replace the group's state machine with a received snapshot. */
  restore(group: GroupId, snapshot: Snapshot): void;
  /** Reads that may be served once `index` is applied. */
  readStates?(group: GroupId, states: readonly ReadState[]): void;
  /** Leadership or role changed. */
  softState?(group: GroupId, state: SoftState): void;
}

export type GroupOptions = Omit<RaftConfig, 'id' | 'group' | 'storage' | 'random' | 'externalHeartbeat'>;

export interface MultiRaftOptions {
  readonly node: NodeId;
  readonly random: () => number;
  /** Sends one node message (best effort; raft retries). */
  readonly send: (message: NodeMessage) => void;
  /** Makes every write issued so far durable: one device flush for all groups. */
  readonly flush: () => Promise<void>;
  readonly handler: GroupHandler;
  /** Defaults for every group. */
  readonly groupOptions?: GroupOptions;
  /** Merge heartbeats per destination (default on); off sends one message per group heartbeat. */
  readonly mergeHeartbeats?: boolean;
}

interface Hosted {
  readonly raft: RaftGroup;
  readonly storage: RaftStorageWriter;
}

/** A processing round between collect() and complete(). */
export interface Round {
  readonly readies: readonly { readonly id: GroupId; readonly hosted: Hosted; readonly rd: Ready; readonly appliedEarly: boolean }[];
}

interface Outbox {
  messages: Message[];
  beats: Beat[];
  beatResponses: BeatResponse[];
}

export class MultiRaft {
  readonly node: NodeId;
  private readonly groups = new Map<GroupId, Hosted>();
  /**
   * Groups with input since the last collect (RaftGroup.onActivity): only they can have a Ready.
   * A round looks at these, not at every hosted group (with 64 and more per shard, the scan was a
   * few per cent of a write's CPU). Every tick touches every group, as a backstop.
   */
  private dirty = new Set<GroupId>();
  private spare = new Set<GroupId>();
  private readonly opts: MultiRaftOptions;
  private readonly merge: boolean;
  private readonly heartbeatTicks: number;
  private ticks = 0;
  private running: Promise<void> | undefined;
  private again = false;
  /** Counters for benchmarks and metrics. */
  readonly stats = { nodeMessagesSent: 0, raftMessagesSent: 0, rounds: 0, flushes: 0 };
  /** When the flush the loop awaits began (0: none in flight), so a watchdog can tell a stuck flush. */
  flushStartedAt = 0;

  constructor(options: MultiRaftOptions) {
    this.node = options.node;
    this.opts = options;
    this.merge = options.mergeHeartbeats ?? true;
    this.heartbeatTicks = options.groupOptions?.heartbeatTicks ?? 1;
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  createGroup(id: GroupId, storage: RaftStorageWriter, options: GroupOptions = {}): RaftGroup {
    if (this.groups.has(id)) throw new FastblockError(ErrorCode.ALREADY_EXISTS, 'group already hosted', { group: id, node: this.node });
    const raft = new RaftGroup({
      ...this.opts.groupOptions,
      ...options,
      id: this.node,
      group: id,
      storage,
      random: this.opts.random,
      externalHeartbeat: true,
    });
    this.groups.set(id, { raft, storage });
    raft.onActivity = () => this.dirty.add(id);
    this.dirty.add(id);
    return raft;
  }

  /** Stops hosting a group. Its storage is the caller's to remove. */
  destroyGroup(id: GroupId): void {
    const hosted = this.groups.get(id);
    if (!hosted) throw new FastblockError(ErrorCode.NOT_FOUND, 'group not hosted', { group: id, node: this.node });
    hosted.raft.onActivity = undefined;
    this.groups.delete(id);
    this.dirty.delete(id);
  }

  group(id: GroupId): RaftGroup | undefined {
    return this.groups.get(id)?.raft;
  }

  groupIds(): IterableIterator<GroupId> {
    return this.groups.keys();
  }

  get size(): number {
    return this.groups.size;
  }

  // ---- inputs -------------------------------------------------------------------------------

  tick(): void {
    this.ticks++;
    const beat = this.ticks % this.heartbeatTicks === 0;
    for (const { raft } of this.groups.values()) {
      raft.tick();
      if (beat) raft.heartbeat();
    }
  }

  /** Steps every message of a node message into its group; messages for unknown groups or another node are dropped. */
  receive(nm: NodeMessage): void {
    if (nm.to !== this.node) return;
    for (const m of nm.messages) {
      if (m.to === this.node && m.from === nm.from) this.groups.get(m.group)?.raft.step(m);
    }
    for (const b of nm.beats) {
      this.groups
        .get(b.group)
        ?.raft.step(message({ type: MessageType.Heartbeat, group: b.group, from: nm.from, to: this.node, term: b.term, commit: b.commit, seq: b.seq }));
    }
    for (const r of nm.beatResponses) {
      this.groups
        .get(r.group)
        ?.raft.step(message({ type: MessageType.HeartbeatResp, group: r.group, from: nm.from, to: this.node, term: r.term, seq: r.seq, index: r.index }));
    }
  }

  // ---- processing rounds --------------------------------------------------------------------

  /** Runs rounds until no group has anything ready; concurrent calls join the running loop. */
  process(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      const round = this.collect();
      if (round.readies.length === 0) continue;
      this.flushStartedAt = Date.now();
      try {
        await this.opts.flush();
      } finally {
        this.flushStartedAt = 0;
      }
      this.stats.flushes++;
      this.complete(round);
    } while (this.again || this.hasReady());
  }

  hasReady(): boolean {
    for (const id of this.dirty) {
      if (this.groups.get(id)?.raft.hasReady()) return true;
      // Nothing until its next input, which marks it again.
      this.dirty.delete(id);
    }
    return false;
  }

  /** Gathers every group's Ready, sends what may go before persisting, issues all writes. */
  collect(): Round {
    const readies: { id: GroupId; hosted: Hosted; rd: Ready; appliedEarly: boolean }[] = [];
    const outboxes = new Map<NodeId, Outbox>();
    // Swap the sets: what the round itself touches (advance, and steps while the flush runs)
    // marks groups for the next one.
    const touched = this.dirty;
    this.dirty = this.spare;
    this.spare = touched;
    for (const id of touched) {
      const hosted = this.groups.get(id);
      if (hosted === undefined || !hosted.raft.hasReady()) continue;
      const rd = hosted.raft.ready();
      // A leader's committed entries are durable here already, so they are applied now rather
      // than after this round's flush of newer ones: its own append counts toward the quorum only
      // once flushed (advance), and a follower acknowledges only entries sent to it, which leave
      // in the collect of the round that persists them here; acknowledgements are stepped
      // between rounds, so what a collect finds committed was flushed by an earlier round.
      // (A follower's commit index may cover entries of this very Ready: it waits for the flush.)
      const appliedEarly = rd.committed.length > 0 && rd.snapshot === undefined && rd.softState === undefined && hosted.raft.role === Role.Leader;
      if (appliedEarly) this.opts.handler.apply(id, rd.committed);
      readies.push({ id, hosted, rd, appliedEarly });
      this.route(outboxes, rd.messages);
      const storage = hosted.storage;
      if (rd.snapshot) storage.applySnapshot(rd.snapshot);
      if (rd.entries.length > 0) storage.append(rd.entries);
      if (rd.hardState) storage.setHardState(rd.hardState);
    }
    touched.clear();
    this.sendAll(outboxes);
    this.stats.rounds++;
    return { readies };
  }

  /** After the flush: sends acknowledgements, applies, advances. */
  complete(round: Round): void {
    const outboxes = new Map<NodeId, Outbox>();
    const handler = this.opts.handler;
    for (const { id, hosted, rd, appliedEarly } of round.readies) {
      // The group may have been destroyed meanwhile; its round is then moot.
      if (this.groups.get(id) !== hosted) continue;
      this.route(outboxes, rd.messagesAfterPersist);
      if (rd.softState) handler.softState?.(id, rd.softState);
      if (rd.snapshot) handler.restore(id, rd.snapshot);
      if (rd.committed.length > 0 && !appliedEarly) handler.apply(id, rd.committed);
      if (rd.readStates.length > 0) handler.readStates?.(id, rd.readStates);
      hosted.raft.advance(rd);
    }
    this.sendAll(outboxes);
  }

  private route(outboxes: Map<NodeId, Outbox>, msgs: readonly Message[]): void {
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      let box = outboxes.get(m.to);
      if (!box) outboxes.set(m.to, (box = { messages: [], beats: [], beatResponses: [] }));
      if (this.merge && m.type === MessageType.Heartbeat) box.beats.push({ group: m.group, term: m.term, commit: m.commit, seq: m.seq });
      else if (this.merge && m.type === MessageType.HeartbeatResp) box.beatResponses.push({ group: m.group, term: m.term, seq: m.seq, index: m.index });
      else box.messages.push(m);
    }
  }

  private sendAll(outboxes: Map<NodeId, Outbox>): void {
    for (const [to, box] of outboxes) {
      assert(to !== this.node, 'a group does not message itself');
      if (this.merge) {
        this.opts.send({ from: this.node, to, messages: box.messages, beats: box.beats, beatResponses: box.beatResponses });
        this.stats.nodeMessagesSent++;
      } else {
        // Without merging, one message per raft message: the baseline the benchmark compares to.
        for (const m of box.messages) {
          this.opts.send({ from: this.node, to, messages: [m], beats: [], beatResponses: [] });
          this.stats.nodeMessagesSent++;
        }
      }
      this.stats.raftMessagesSent += box.messages.length + box.beats.length + box.beatResponses.length;
    }
  }
}
