/**
 * One shard of an OSD: its raft groups (one per PG replica it hosts, driven by one MultiRaft),
 * its store, its listener on the OSD's port + shard, and its connections to the same shard of
 * the other OSDs. Nothing here crosses threads: the OSD runs one Shard per worker thread.
 *
 * Raft node ids are OSD ids + 1 (raft reserves 0 for "none").
 */
import type { Logger } from 'pino';
import type { ClusterMap, OsdInfo, PgMapping } from '../../kernel/contracts/cluster-map.js';
import type { PgId, ShardStore, ShardStoreStats } from '../../kernel/contracts/store.js';
import type { InboundConnection, InboundHandler, InboundMessage, NetAddress, OutboundReply, Transport, TransportConnection, TransportListener } from '../../kernel/contracts/transport.js';
import { ErrorCode, FastblockError, isFastblockError } from '../../kernel/errors.js';
import { MultiRaft, decodeNodeMessage, encodeNodeMessage, type Entry, type GroupId, type NodeMessage, type RaftStorageWriter, type ReadState, type Snapshot, type SoftState, type Membership } from '../../kernel/raft/index.js';
import { DATA_METHOD_IO, DATA_METHOD_PG_QUERY, DATA_METHOD_RECOVERY } from '../../client/data-protocol.js';
import { shardEndpoint } from '../../client/pg-router.js';
import { DataService, pgId, type PgDirectory } from './data-service.js';
import { Pg, type PgRaftPort } from './pg.js';
import { decodePgQuery, encodePgQueryReply, peerPg, stillMember } from './pg-peering.js';
import { RecoveryServer, pullPg } from './recovery.js';
import { MembershipDriver } from './membership-driver.js';
import { compactionPoint } from './log-compaction.js';
import { OpMeter } from './op-meter.js';

/** One-way method id of raft node messages between shards (the raft service's range, 0x03xx). */
export const RAFT_METHOD_NODE_MESSAGE = 0x0301;

export const nodeOf = (osd: number): number => osd + 1;
export const osdOf = (node: number): number | undefined => (node === 0 ? undefined : node - 1);

/** Where a PG's raft state lives: memory for tests, the store's disk_log and kv in an OSD. */
export interface RaftStorageProvider {
  /** True when this shard holds state for the PG (it existed here before). */
  has(pg: PgId): boolean;
  /** Opens the PG's raft storage; a PG without state starts with `membership` as its first configuration. */
  open(pg: PgId, membership: Membership): Promise<{ storage: RaftStorageWriter; applied: number; restoring?: number }>;
  /** The PG's objects were rebuilt from a snapshot: the restore need not be redone after a crash. */
  restored(pg: PgId): void;
  remove(pg: PgId): Promise<void>;
  /**
   * Makes every raft write issued so far durable: log operations, and the kv records (hard state,
   * checkpoints, restore marks) with one flush of the whole store when they changed. Object
   * writes only ride along when the store needs a device flush for its logs (per-PG logs): with
   * durable log writes (a shard journal) the checkpoint's store flush covers them.
   */
  flush(): Promise<void>;
  /** Told, for each flush that had log writes to make durable, how long they took to be (ms). */
  onLogFlush?: (ms: number) => void;
  /** Records that the PG's objects are durable up to `applied` (the store was flushed first). */
  checkpoint(pg: PgId, applied: number): void;
  /** Entry bytes the PG's log holds in memory (compaction bounds it). */
  heldBytes(pg: PgId): number;
  /** PGs with raft state on this shard, open or not. */
  hosted?(): PgId[];
}

export interface ShardOptions {
  readonly osd: number;
  readonly shard: number;
  /** This shard's own listen address (the OSD's port + shard). */
  readonly listen: NetAddress;
  readonly transport: Transport;
  readonly store: ShardStore;
  readonly raftStorage: RaftStorageProvider;
  readonly logger: Logger;
  /** Raft clock period. Election timeout is electionTicks (10) of these, heartbeats every tick. */
  readonly tickMs?: number;
  /** Log entries kept behind the applied index before the log is compacted. */
  readonly compactAfterEntries?: number;
  /** A PG log holding more entry bytes than this is compacted at the next checkpoint. */
  readonly compactAfterBytes?: number;
  /** The store fraction past which new writes are refused with NO_SPACE (default 0.95). */
  readonly fullRatio?: number;
  /** Requests for other services that reach this shard's listener (the monitor's TransferLeader). */
  readonly extraMethods?: ReadonlyMap<number, (message: InboundMessage) => Promise<OutboundReply> | OutboundReply>;
}

export interface PgReport {
  readonly pool: number;
  readonly index: number;
  readonly state: string;
  readonly leader: boolean;
  readonly term: number;
}

const READ_INDEX_TIMEOUT_MS = 5000;
/** A PG log holding more entry bytes than this is compacted at the next checkpoint (compactAfterBytes' default). */
const DEFAULT_COMPACT_AFTER_BYTES = 4 * 1024 * 1024;
/** The least a PG log's byte bound gets from a shared log space, however many PGs share it. */
const MIN_SHARED_LOG_BYTES = 256 * 1024;
/** A proposal or flush older than this is reported as a stall (clients retry after 5 s). */
const STALL_WARN_MS = 3000;
const STALL_CHECK_MS = 2000;
/** Store fraction past which writes are refused (osd.fullRatio's default). */
const DEFAULT_FULL_RATIO = 0.95;

export class Shard implements PgDirectory {
  readonly osd: number;
  readonly shard: number;
  /** What the data service served, for heartbeats and /metrics. */
  readonly meter = new OpMeter();
  private readonly logger: Logger;
  private readonly raft: MultiRaft;
  private readonly pgs = new Map<PgId, Pg>();
  private readonly opening = new Set<PgId>();
  /** When each unmapped PG last asked its current replicas whether it is still a member. */
  private readonly leftChecks = new Map<PgId, number>();
  private readonly storages = new Map<PgId, RaftStorageWriter>();
  private readonly data: DataService;
  private readonly recovery: RecoveryServer;
  private readonly membership: MembershipDriver;
  private map: ClusterMap | undefined;
  private mine = new Map<PgId, PgMapping>();
  private osds = new Map<number, OsdInfo>();
  private listener: TransportListener | undefined;
  private timers: NodeJS.Timeout[] = [];
  private readContext = 0;
  /** Why writes are refused now (the store past osd.fullRatio), checked every raft tick. */
  full: string | undefined;
  private fullOsds: ReadonlySet<number> = new Set();
  private readonly reads = new Map<number, { resolve: (index: number) => void; reject: (err: unknown) => void; timer: NodeJS.Timeout }>();
  private stopped = false;

  constructor(private readonly options: ShardOptions) {
    this.osd = options.osd;
    this.shard = options.shard;
    this.logger = options.logger.child({ shard: options.shard });
    options.raftStorage.onLogFlush = (ms) => this.meter.logFlushed(ms);
    this.raft = new MultiRaft({
      node: nodeOf(options.osd),
      random: Math.random,
      send: (nm) => this.send(nm),
      flush: () => options.raftStorage.flush(),
      handler: {
        apply: (group, entries) => this.apply(group, entries),
        restore: (group, snapshot) => this.restore(group, snapshot),
        readStates: (group, states) => this.readStates(group, states),
        softState: (group, state) => this.softState(group, state),
      },
      groupOptions: { electionTicks: 10, heartbeatTicks: 1, preVote: true, checkQuorum: true, leaseReads: true },
    });
    this.data = new DataService(this, options.store.objects, this.logger, this.meter);
    this.recovery = new RecoveryServer(options.store.objects, (pg) => this.pgs.has(pg) && !this.pgs.get(pg)!.restoring, this.logger);
    this.membership = new MembershipDriver(this.raft, this.logger);
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  async start(): Promise<NetAddress> {
    const handler: InboundHandler = {
      onRequest: (connection, message) => this.onRequest(connection, message),
      onMessage: (_connection, message) => this.onMessage(message),
      // The data service keeps no view of a request once it has replied (a write's bytes are
      // copied into its raft entry), so the transport may reuse those receive slabs.
      borrowsPayload: (method) => method === DATA_METHOD_IO,
      // Node messages are decoded with their tail copied (decodeNodeMessage's `borrowed`): no
      // entry views the receive slab once onMessage returns, so the transport reuses it.
      borrowsMessage: (method) => method === RAFT_METHOD_NODE_MESSAGE,
    };
    this.listener = await this.options.transport.listen(this.options.listen, handler, { shard: this.shard });
    const tickMs = this.options.tickMs ?? 100;
    this.timers.push(
      setInterval(() => {
        this.raft.tick();
        this.kick();
        const stats = this.options.store.stats();
        this.checkFull(stats);
        this.checkLogSpace(stats);
      }, tickMs),
      setInterval(() => this.reconcileLogged(), 1000),
      setInterval(() => this.requestCheckpoint(), 5000),
      setInterval(() => this.watchStalls(), STALL_CHECK_MS),
      setInterval(() => {
        for (const pg of this.pgs.values()) pg.expireProposals();
      }, 1000),
    );
    this.checkFull();
    this.logger.info({ address: this.listener.address, osd: this.osd }, 'shard listening');
    return this.listener.address;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    await this.listener?.close();
    this.recovery.close();
    for (const pg of this.pgs.values()) pg.close('shard stopping');
    await this.checkpointing;
    await this.checkpoint().catch((err) => this.logger.warn({ err }, 'final checkpoint failed'));
  }

  // ---- the map ------------------------------------------------------------------------------

  get epoch(): number {
    return this.map?.epoch ?? 0;
  }

  /** Raft rounds, flushes and node messages so far (benchmarks read them per write). */
  get raftStats(): Readonly<MultiRaft['stats']> {
    return this.raft.stats;
  }

  setMap(map: ClusterMap): void {
    if (this.map && map.epoch <= this.map.epoch) return;
    this.map = map;
    this.osds = new Map(map.osds.map((o) => [o.id, o]));
    this.mine = new Map();
    for (const m of map.pgs) {
      if (m.replicas.some((r) => r.osd === this.osd && r.shard === this.shard)) this.mine.set(pgId(m.pool, m.index), m);
    }
    this.reconcileLogged();
  }

  pg(pool: number, index: number): Pg | undefined {
    return this.pgs.get(pgId(pool, index));
  }

  notMine(pool: number, index: number): boolean {
    return !this.mine.has(pgId(pool, index));
  }

  writesRefused(pool: number, index: number): string | undefined {
    if (this.full !== undefined) return this.full;
    if (this.fullOsds.size === 0) return undefined;
    const id = pgId(pool, index);
    for (const replica of this.mine.get(id)?.replicas ?? []) {
      if (this.fullOsds.has(replica.osd)) return `PG ${id}: osd.${replica.osd} holds a replica and is past monitor.fullRatio; writes are refused until space is freed`;
    }
    return undefined;
  }

  /** The up OSDs the monitor reports past monitor.fullRatio (from the OSD's heartbeat replies). */
  setFullOsds(osds: readonly number[]): void {
    const next = new Set(osds);
    const added = osds.filter((osd) => !this.fullOsds.has(osd));
    const cleared = [...this.fullOsds].filter((osd) => !next.has(osd));
    this.fullOsds = next;
    if (added.length > 0) this.logger.error({ osds: added }, 'OSDs past monitor.fullRatio: writes to the PGs they hold are refused');
    if (cleared.length > 0) this.logger.warn({ osds: cleared }, 'OSDs below monitor.fullRatio again: their PGs take writes');
  }

  /** Refuses writes while the store is past the full ratio, and says so once each way in the log. */
  private checkFull({ capacityBytes, usedBytes }: ShardStoreStats = this.options.store.stats()): void {
    const ratio = capacityBytes > 0 ? usedBytes / capacityBytes : 0;
    const limit = this.options.fullRatio ?? DEFAULT_FULL_RATIO;
    const wasFull = this.full !== undefined;
    if (ratio < limit) {
      this.full = undefined;
      if (wasFull) this.logger.warn({ usedBytes, capacityBytes, fullRatio: limit }, 'store below the full ratio again: taking writes');
      return;
    }
    this.full = `osd.${this.osd} shard ${this.shard}: store ${Math.floor(ratio * 100)}% full (osd.fullRatio ${limit}); writes are refused until space is freed`;
    if (!wasFull) this.logger.error({ usedBytes, capacityBytes, fullRatio: limit }, 'store full: refusing writes (discards still go)');
  }

  /** A failed pass is logged and retried by the next tick: a rejection must never end the shard worker. */
  private reconcileLogged(): void {
    this.reconcile().catch((err: unknown) => this.logger.error({ err }, 'reconciling PGs with the map failed; retrying'));
  }

  /** Opens the PGs the map gives this shard, drives membership toward the map, drops PGs that left. */
  private async reconcile(): Promise<void> {
    if (this.stopped || !this.map) return;
    for (const [id, mapping] of this.mine) {
      const pg = this.pgs.get(id);
      if (!pg) {
        if (!this.opening.has(id)) void this.open(id, mapping);
        continue;
      }
      if (pg.isLeader) this.membership.drive(id, mapping.replicas.map((r) => nodeOf(r.osd)));
    }
    // PGs on disk that the map moved away while we were down: open them too, so that they serve
    // as members until the leader removes them, and are deleted (space freed) once they are not.
    for (const id of this.options.raftStorage.hosted?.() ?? []) {
      if (this.mine.has(id) || this.pgs.has(id) || this.opening.has(id)) continue;
      const [pool, index] = id.split('.');
      void this.open(id, { pool: Number(pool), index: parseInt(index, 16), replicas: [], epoch: 0 });
    }
    for (const [id, pg] of this.pgs) {
      if (this.mine.has(id)) continue;
      const group = this.raft.group(id);
      const member = group && (group.membership.voters.includes(nodeOf(this.osd)) || group.membership.learners.includes(nodeOf(this.osd)));
      // Still a member: serve on until the leader removes us (the new replicas must catch up first).
      if (member && group.membership.voters.length > 0) {
        // Removed while we were away, we never heard of it: ask the PG's current replicas now and then.
        if (Date.now() - (this.leftChecks.get(id) ?? 0) > 10_000) {
          this.leftChecks.set(id, Date.now());
          const [pool, index] = id.split('.');
          const mapping = this.map.pgs.find((m) => m.pool === Number(pool) && m.index === parseInt(index, 16));
          const peers = (mapping?.replicas ?? []).map((r) => this.peer(r.osd)).filter((c): c is TransportConnection => c !== undefined);
          if ((await stillMember(id, nodeOf(this.osd), peers)) !== false) continue;
        } else continue;
      }
      this.leftChecks.delete(id);
      await this.destroy(id, pg);
    }
    this.kick();
  }

  private async open(id: PgId, mapping: PgMapping): Promise<void> {
    this.opening.add(id);
    try {
      const voters = mapping.replicas.map((r) => nodeOf(r.osd));
      let membership: Membership = { voters: [], learners: [] };
      if (!this.options.raftStorage.has(id)) {
        const peers = mapping.replicas.filter((r) => r.osd !== this.osd).map((r) => this.peer(r.osd)).filter((c): c is TransportConnection => c !== undefined);
        const verdict = await peerPg(id, nodeOf(this.osd), peers);
        if (verdict.kind === 'unknown') {
          this.logger.debug({ pg: id }, 'peering: a replica did not answer; retrying');
          return;
        }
        if (verdict.kind === 'new') membership = { voters, learners: [] };
        if (verdict.kind === 'created') membership = { voters: verdict.voters, learners: [] };
        this.logger.info({ pg: id, verdict: verdict.kind, voters: membership.voters }, membership.voters.length ? 'creating PG' : 'joining PG: waiting to be added');
      }
      if (this.stopped || this.pgs.has(id) || (!this.mine.has(id) && !this.options.raftStorage.has(id))) return;
      const { storage, applied, restoring } = await this.options.raftStorage.open(id, membership);
      const port = this.port(id);
      const pg = new Pg(id, mapping.pool, mapping.index, this.osd, this.options.store.objects, port, applied, (err) =>
        this.storageFailed(err, 'a write acknowledged before it landed failed on the device: the shard stops so that its PGs fail over'),
      );
      this.raft.createGroup(id, storage, { applied });
      this.storages.set(id, storage);
      this.pgs.set(id, pg);
      // A crash interrupted a snapshot's object pull: pull again before applying anything more.
      if (restoring !== undefined) this.restore(id, { meta: { index: restoring, term: 0, membership }, data: new Uint8Array(0) });
      // A new PG's first replica campaigns at once rather than after a random timeout.
      if (membership.voters.length > 0 && membership.voters[0] === nodeOf(this.osd)) this.raft.group(id)?.campaign();
      this.kick();
    } catch (err) {
      this.logger.error({ err, pg: id }, 'opening PG failed');
    } finally {
      this.opening.delete(id);
    }
  }

  private async destroy(id: PgId, pg: Pg): Promise<void> {
    if (this.pgs.get(id) !== pg) return; // another reconcile got here first
    this.logger.info({ pg: id }, 'removing PG replica that left the map');
    this.pgs.delete(id);
    this.lastIndexAtCheckpoint.delete(id);
    this.storages.delete(id);
    pg.close('PG removed from this OSD');
    if (this.raft.group(id)) this.raft.destroyGroup(id);
    await this.options.store.objects.removePg(id);
    await this.options.raftStorage.remove(id);
  }

  private port(id: PgId): PgRaftPort {
    return {
      propose: (data) => {
        const group = this.raft.group(id);
        if (!group) throw new FastblockError(ErrorCode.NOT_LEADER, `PG ${id} is not open`, { pg: id });
        try {
          const index = group.propose(data);
          this.kick();
          return { index, term: group.term };
        } catch (err) {
          // A transfer in progress: the client waits for the new leader like for any NOT_LEADER.
          if (isFastblockError(err, ErrorCode.BUSY)) throw new FastblockError(ErrorCode.NOT_LEADER, err.message, { pg: id });
          throw err;
        }
      },
      readIndex: () =>
        new Promise<number>((resolve, reject) => {
          const group = this.raft.group(id);
          if (!group) return reject(new FastblockError(ErrorCode.NOT_LEADER, `PG ${id} is not open`, { pg: id }));
          // While the lease holds (and the leader has committed in its term) the answer is the
          // commit index, as group.readIndex() would give it one processing round later.
          if (group.role === 'leader' && group.leaseValid() && group.log.term(group.log.committed) === group.term) return resolve(group.log.committed);
          const context = ++this.readContext;
          const timer = setTimeout(() => {
            this.reads.delete(context);
            reject(new FastblockError(ErrorCode.TIMEOUT, `PG ${id}: no read index in ${READ_INDEX_TIMEOUT_MS} ms`, { pg: id }));
          }, READ_INDEX_TIMEOUT_MS);
          this.reads.set(context, { resolve, reject, timer });
          try {
            group.readIndex(context);
          } catch (err) {
            clearTimeout(timer);
            this.reads.delete(context);
            return reject(err);
          }
          this.kick();
        }),
    };
  }

  // ---- raft plumbing ------------------------------------------------------------------------

  /**
   * Runs processing rounds until nothing is ready (coalesced with any round already running),
   * from the check phase of this event-loop turn: every request and node message read in the
   * turn is stepped into its group first, so one round (one flush) takes them all. Started at
   * once, a round held only the first request of a read and the rest waited for the next flush.
   */
  private kick(): void {
    if (this.stopped || this.kicked) return;
    this.kicked = true;
    setImmediate(this.runRounds);
  }

  private kicked = false;
  private readonly runRounds = (): void => {
    this.kicked = false;
    if (this.stopped) return;
    this.raft.process().catch((err: unknown) => this.storageFailed(err));
  };

  /**
   * A round whose storage failed (a log append found no space, the device erred) leaves its
   * groups' entries neither durable nor offered again: the PGs this shard leads would keep their
   * leadership and never commit. Fail-stop instead, as a storage node must: the worker ends, the
   * OSD stops with the reason logged, and the other replicas elect leaders and go on. The same
   * holds when the object store fails under a write the PG acknowledged as issued (pg.ts).
   */
  private storageFailed(err: unknown, reason = 'raft storage failed: the shard stops so that its PGs fail over'): void {
    if (this.stopped) return;
    this.logger.fatal({ err }, reason);
    this.stopped = true;
    setImmediate(() => {
      throw err;
    });
  }

  private peer(osd: number): TransportConnection | undefined {
    const info = this.osds.get(osd);
    if (!info) return undefined;
    return this.options.transport.connect(shardEndpoint(info, this.shard), this.shard);
  }

  private send(nm: NodeMessage): void {
    if (this.stopped) return;
    const to = osdOf(nm.to);
    const connection = to === undefined ? undefined : this.peer(to);
    if (!connection) return; // unknown OSD: raft retries once the map names it
    const { header, payload } = encodeNodeMessage(nm);
    connection.send(RAFT_METHOD_NODE_MESSAGE, header, payload);
  }

  private onMessage(message: InboundMessage): void {
    if (message.method !== RAFT_METHOD_NODE_MESSAGE) return;
    this.raft.receive(decodeNodeMessage(message.header, message.payload, true));
    this.kick();
  }

  private onRequest(connection: InboundConnection, message: InboundMessage): Promise<OutboundReply> | OutboundReply {
    switch (message.method) {
      case DATA_METHOD_IO:
        // Metered by the data service, which reads the op before the receive buffer may be reused.
        return this.data.handle(connection, message);
      case DATA_METHOD_RECOVERY:
        return this.recovery.handle(message);
      case DATA_METHOD_PG_QUERY: {
        const id = decodePgQuery(message.header);
        const group = this.raft.group(id);
        const voters = group?.membership.voters ?? [];
        const hasState = group ? voters.length > 0 || group.log.lastIndex() > 0 : this.options.raftStorage.has(id);
        return { header: encodePgQueryReply({ hasState, leader: group ? osdOf(group.leader) : undefined, term: group?.term ?? 0, voters }) };
      }
      default: {
        const extra = this.options.extraMethods?.get(message.method);
        if (extra) return extra(message);
        throw new FastblockError(ErrorCode.NOT_FOUND, `no method 0x${message.method.toString(16)} on an OSD shard`, { method: message.method });
      }
    }
  }

  private apply(group: GroupId, entries: readonly Entry[]): void {
    const pg = this.pgs.get(group);
    if (!pg) return;
    let bytes = 0;
    for (const e of entries) bytes += e.data.byteLength;
    this.appliedBytes += bytes;
    this.meter.applied(entries.length);
    // Large writes fill the logs fast: checkpoint (and compact) by volume, not only by time.
    if (this.appliedBytes > 64 * 1024 * 1024) this.requestCheckpoint();
    // And look at the logs' space every eighth of its budget applied, not only every tick: a busy
    // shard on a small journal fills the margin between the budget and a grow within a few ticks.
    this.appliedSinceSpaceCheck += bytes;
    if (this.logSpaceCheckBytes > 0 && this.appliedSinceSpaceCheck > this.logSpaceCheckBytes) this.checkLogSpace(this.options.store.stats());
    pg.applyCommitted(entries, this.applyFailed);
  }

  private readonly applyFailed = (err: unknown, pg: PgId): void => this.logger.error({ err, pg }, 'apply failed');

  private restore(group: GroupId, snapshot: Snapshot): void {
    const pg = this.pgs.get(group);
    if (!pg) return;
    this.logger.info({ pg: group, index: snapshot.meta.index }, 'restoring PG from a snapshot: pulling objects from the leader');
    const started = Date.now();
    void pg
      .restore(
        snapshot.meta.index,
        () => {
          const source = pg.leader === undefined ? undefined : this.peer(pg.leader);
          if (!source) throw new FastblockError(ErrorCode.NOT_LEADER, `PG ${group}: no leader to pull from`, { pg: group });
          return pullPg(source, group);
        },
        (err) => this.logger.warn({ err, pg: group }, 'snapshot pull failed; retrying'),
      )
      .then((restored) => {
        if (!restored) return; // closed before it finished
        this.options.raftStorage.restored(group);
        this.logger.info({ pg: group, ms: Date.now() - started }, 'PG restored from snapshot');
      });
  }

  private readStates(_group: GroupId, states: readonly ReadState[]): void {
    for (const state of states) {
      const read = this.reads.get(state.context);
      if (!read) continue;
      this.reads.delete(state.context);
      clearTimeout(read.timer);
      read.resolve(state.index);
    }
  }

  private softState(group: GroupId, state: SoftState): void {
    const pg = this.pgs.get(group);
    const raft = this.raft.group(group);
    if (pg && raft) pg.setLeader(osdOf(state.leader), raft.term);
  }

  // ---- durability of applied state ----------------------------------------------------------

  /**
   * Flushes the objects, then records how far each PG's objects are durable and compacts logs
   * behind that point. Until a checkpoint covers an entry, a restart replays it from the log.
   */
  private checkpointing: Promise<void> | undefined;
  private appliedBytes = 0;
  /**
   * Live log bytes past which the next checkpoint is run for log space: the budget, or more when
   * the last such checkpoint could not bring the logs under it (tails at their floor), so that
   * one does not run every tick.
   */
  private logSpaceTrigger = 0;
  /** Bytes applied since the log space was last looked at, and how many make the next look (0: no shared log space). */
  private appliedSinceSpaceCheck = 0;
  private logSpaceCheckBytes = 0;
  /** Each PG's last log index at the previous checkpoint: one that has not moved is idle. */
  private readonly lastIndexAtCheckpoint = new Map<PgId, number>();

  /** Checkpoints when the logs' live records outgrow the space the store gives them (a journal). */
  private checkLogSpace({ raftLogSpace: space }: ShardStoreStats): void {
    this.appliedSinceSpaceCheck = 0;
    this.logSpaceCheckBytes = space === undefined ? 0 : space.budgetBytes / 8;
    if (space === undefined || this.checkpointing || space.liveBytes <= Math.max(space.budgetBytes, this.logSpaceTrigger)) return;
    void this.requestCheckpoint()?.then(() => {
      const after = this.options.store.stats().raftLogSpace;
      if (after) this.logSpaceTrigger = after.liveBytes > after.budgetBytes ? after.liveBytes + after.budgetBytes / 4 : 0;
    });
  }

  /**
   * A PG log's byte bound: the configured one, or, when the logs share a bounded space, the PG's
   * share of half of it (a compacted log keeps about half its bound), whichever is smaller.
   */
  private logBytesBound(space: ShardStoreStats['raftLogSpace']): number {
    const configured = this.options.compactAfterBytes ?? DEFAULT_COMPACT_AFTER_BYTES;
    if (space === undefined) return configured;
    return Math.min(configured, Math.max(MIN_SHARED_LOG_BYTES, Math.floor(space.budgetBytes / (2 * Math.max(1, this.pgs.size)))));
  }

  /** Runs a checkpoint unless one is running (timer, or enough bytes applied since the last). */
  private requestCheckpoint(): Promise<void> | undefined {
    if (this.checkpointing || this.stopped) return undefined;
    this.appliedBytes = 0;
    this.checkpointing = this.checkpoint()
      .catch((err) => this.logger.error({ err }, 'checkpoint failed'))
      .finally(() => (this.checkpointing = undefined));
    return this.checkpointing;
  }

  async checkpoint(): Promise<void> {
    const applied = [...this.pgs.values()].map((pg) => ({ pg, applied: pg.appliedIndex }));
    const maxBytes = this.logBytesBound(this.options.store.stats().raftLogSpace);
    await this.options.store.flush();
    for (const { pg, applied: index } of applied) {
      if (pg.restoring) continue;
      this.options.raftStorage.checkpoint(pg.id, index);
      const group = this.raft.group(pg.id);
      const storage = group && this.raftStorageOf(pg.id);
      if (!group || !storage) continue;
      const lastIndex = storage.lastIndex();
      const quiet = this.lastIndexAtCheckpoint.get(pg.id) === lastIndex;
      this.lastIndexAtCheckpoint.set(pg.id, lastIndex);
      const at = compactionPoint(
        { applied: index, firstIndex: storage.firstIndex(), lastIndex, heldBytes: this.options.raftStorage.heldBytes(pg.id), replicated: group.replicatedIndex(), quiet },
        { keepEntries: this.options.compactAfterEntries ?? 2048, maxBytes },
      );
      if (at !== undefined) storage.createSnapshot({ meta: { index: at, term: storage.term(at) ?? 0, membership: group.membershipAt(at) }, data: new Uint8Array(0) });
    }
    await this.options.raftStorage.flush();
  }

  private raftStorageOf(id: PgId): RaftStorageWriter | undefined {
    return this.storages.get(id);
  }

  // ---- status -------------------------------------------------------------------------------

  /**
   * Warns about PGs whose proposals wait too long, with what raft knows of them, and about a
   * storage flush that does not return: the operator's (and a failing test's) view of a stall.
   */
  private watchStalls(): void {
    const now = Date.now();
    if (this.raft.flushStartedAt && now - this.raft.flushStartedAt > STALL_WARN_MS) {
      this.logger.warn({ flushMs: now - this.raft.flushStartedAt }, 'raft storage flush has not returned');
    }
    for (const [id, pg] of this.pgs) {
      const oldest = pg.oldestProposal(now);
      if (!oldest || oldest.ageMs < STALL_WARN_MS) continue;
      const status = this.raft.group(id)?.status();
      this.logger.warn(
        {
          pg: id,
          waiting: pg.waitingProposals,
          oldestIndex: oldest.index,
          oldestMs: oldest.ageMs,
          pgApplied: pg.appliedIndex,
          restoring: pg.restoring,
          raft: status && {
            role: status.role,
            term: status.term,
            leader: status.leader,
            commit: status.commit,
            applied: status.applied,
            first: status.firstIndex,
            last: status.lastIndex,
            progress: Object.fromEntries([...status.progress].map(([node, p]) => [node, `${p.state}:${p.match}/${p.next}`])),
          },
        },
        'PG proposals stalled',
      );
    }
  }

  reports(): PgReport[] {
    const out: PgReport[] = [];
    for (const [id, pg] of this.pgs) {
      const group = this.raft.group(id);
      const mapping = this.mine.get(id);
      let state = 'peering';
      if (pg.restoring) state = 'recovering';
      else if (group && group.leader !== 0) {
        const want = new Set((mapping?.replicas ?? []).map((r) => nodeOf(r.osd)));
        const m = group.membership;
        const clean = m.learners.length === 0 && m.voters.length === want.size && m.voters.every((v) => want.has(v));
        state = clean ? 'active' : 'remapping';
      }
      out.push({ pool: pg.pool, index: pg.index, state, leader: pg.isLeader, term: pg.term });
    }
    return out;
  }

  /**
   * Hands the PG's leadership to `osd` (the monitor's leader balancing). The monitor decides from
   * the map, which may run ahead of the group: a target that is not a voter yet (a learner still
   * catching up) is declined, and the next balancing round asks again.
   */
  transferLeader(pool: number, index: number, osd: number): boolean {
    const id = pgId(pool, index);
    const group = this.raft.group(id);
    if (!group || group.role !== 'leader') return false;
    if (!group.membership.voters.includes(nodeOf(osd))) {
      this.logger.info({ pg: id, to: osd, voters: group.membership.voters.map(osdOf) }, 'leader transfer declined: the target is not a voter yet');
      return false;
    }
    group.transferLeader(nodeOf(osd));
    this.kick();
    return true;
  }
}
