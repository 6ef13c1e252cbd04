/**
 * One monitor. Every monitor keeps the current map (the leader from its own commits, followers from
 * the store's watch) and serves reads and subscriptions; only the elected leader changes the map,
 * tracks heartbeats, marks OSDs down and out, and balances leaders.
 *
 * Changes are serialized through mutate(): compute a MapChange from the current snapshot, remap
 * PGs through the placement policy if OSDs or pools changed, commit it as the next epoch in one
 * store transaction, then publish. A commit fenced off because the store moved under this monitor
 * (a deposed leader wrote late) reloads and plans again once; a second one steps down (NOT_LEADER).
 */
import type { Logger } from 'pino';
import type { ClusterMap, LeaderTransfer, MetaLeadership, MetaOp, MetaStore, NetAddress, OsdInfo, PoolInfo } from '../../kernel/contracts/index.js';
import { ErrorCode, FastblockError, isFastblockError } from '../../kernel/errors.js';
import { PolicyHost } from '../../plugins/placement/policy-host.js';
import type { SandboxLimits } from '../../plugins/placement/sandbox.js';
import { MapRepository } from './map-repository.js';
import { EMPTY_STATE, isNoop, toClusterMap, publicOsd, type MapChange, type MonitorState, type OsdRecord } from './map-state.js';
import { expire, revive, type LifecycleTimes } from './osd-lifecycle.js';
import { CapacityTable, DEFAULT_FULL_RATIO, type StoreUsage } from './capacity.js';
import type { HeartbeatReplyMessage } from './protocol.js';
import { PgStatusTable, type PgReport } from './pg-status.js';
import { ImageWatchers } from './image-watchers.js';
import { remap } from './remap.js';

export interface MonitorOptions {
  readonly store: MetaStore;
  readonly prefix?: string;
  /** This monitor's advertised control address, "host:port": its candidate id and the leader hint others give. */
  readonly id: string;
  readonly times: LifecycleTimes;
  /** How often the leader looks for silent OSDs. */
  readonly tickMs: number;
  /** Leader balancing: one round every intervalMs, at most transfersPerRound transfers per round. */
  readonly leaderBalance: { readonly intervalMs: number; readonly transfersPerRound: number };
  readonly policyLimits: SandboxLimits;
  readonly logger: Logger;
  /** Asks the PG's current leader (on `leader`) to hand leadership to transfer.toOsd. */
  readonly transferLeader?: (leader: OsdInfo, transfer: LeaderTransfer) => Promise<void>;
  /** An OSD whose store is fuller than this (0..1) puts the cluster in HEALTH_WARN (default 0.85). */
  readonly nearFullRatio?: number;
  /** An up OSD past this fraction makes leaders refuse writes to its PGs (default 0.95). */
  readonly fullRatio?: number;
  /** An up OSD whose commit latency is past this (ms) puts the cluster in HEALTH_WARN (default 500; 0: never). */
  readonly slowCommitMs?: number;
  readonly now?: () => number;
}

export interface BootRequest {
  /** The id kept on the OSD's disk, or -1 on its first boot. */
  readonly osdId: number;
  readonly uuid: string;
  readonly address: NetAddress;
  readonly shards: number;
  readonly host: string;
  readonly failureDomain: string;
  readonly weight: number;
}

export interface MutationPlan {
  readonly change: MapChange;
  readonly extra?: readonly MetaOp[];
  /** Pools whose PGs must be recomputed after the change (after its OSD and pool updates). */
  readonly remap?: 'all' | readonly PoolInfo[];
  /** Runs inside the mutation queue right after the commit, before any later mutation starts. */
  readonly committed?: (next: MonitorState) => void;
}

export type EpochListener = (before: MonitorState, after: MonitorState) => void;

const ELECTION = 'monitor-leader';

export class Monitor {
  readonly repo: MapRepository;
  readonly policies: PolicyHost;
  readonly pgStatus = new PgStatusTable();
  readonly capacity = new CapacityTable();
  /** Who has which image open (leases, leader only). */
  readonly watchers: ImageWatchers;
  private snapshot: MonitorState;
  private leadership: MetaLeadership | undefined;
  private readonly lastSeen = new Map<number, number>();
  private readonly listeners = new Set<EpochListener>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Bumped when leadership ends, so periodic tasks of an old term stop rescheduling. */
  private generation = 0;
  private stopWatch: (() => void) | undefined;
  private stopped = false;
  private followerPoll: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private cachedMap: { state: MonitorState; map: ClusterMap } | undefined;
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(readonly options: MonitorOptions) {
    this.repo = new MapRepository(options.store, options.prefix);
    this.policies = new PolicyHost(options.policyLimits);
    this.now = options.now ?? Date.now;
    this.watchers = new ImageWatchers(this.now);
    this.log = options.logger;
    this.snapshot = EMPTY_STATE;
  }

  get state(): MonitorState {
    return this.snapshot;
  }

  get isLeader(): boolean {
    return this.leadership?.isLeader === true;
  }

  /** The map at the current epoch; one object per epoch (subscribers and GetMap share it). */
  map(): ClusterMap {
    if (this.cachedMap?.state !== this.snapshot) this.cachedMap = { state: this.snapshot, map: toClusterMap(this.snapshot) };
    return this.cachedMap.map;
  }

  onEpoch(listener: EpochListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async start(): Promise<void> {
    this.snapshot = await this.repo.load(true);
    await this.loadPolicies();
    this.stopWatch = this.options.store.watch(this.repo.mapPrefix, 0, () => this.scheduleReload());
    this.pollWhileFollowing();
    void this.campaign();
  }

  /**
   * Watches can stall (an etcd member dies and the client backs off before re-watching), so a
   * follower also reads the epoch record every tick and reloads when it moved.
   */
  private pollWhileFollowing(): void {
    const poll = setTimeout(async () => {
      if (this.stopped) return;
      if (!this.isLeader) {
        const epoch = await this.repo.storedEpoch().catch(() => undefined);
        if (epoch !== undefined && epoch > this.snapshot.epoch) this.scheduleReload();
      }
      this.pollWhileFollowing();
    }, this.options.tickMs);
    poll.unref();
    this.followerPoll = poll;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.followerPoll);
    this.stopTimers();
    this.stopWatch?.();
    await this.queue.catch(() => undefined);
    await this.leadership?.resign();
    this.leadership = undefined;
  }

  /** The leader's address as far as this monitor knows (itself when leading). */
  async leaderHint(): Promise<string | undefined> {
    if (this.isLeader) return this.options.id;
    const store = this.options.store as MetaStore & { leaderOf?: (election: string) => Promise<string | undefined> };
    return await store.leaderOf?.(`${this.repo.prefix}${ELECTION}`).catch(() => undefined);
  }

  /** NOT_LEADER, with the leader's address as context.leaderHint when known. */
  notLeaderError(): Promise<FastblockError> {
    return this.notLeader();
  }

  private async notLeader(): Promise<FastblockError> {
    const leaderHint = await this.leaderHint();
    return new FastblockError(ErrorCode.NOT_LEADER, `monitor ${this.options.id} is not the leader${leaderHint ? `; the leader is ${leaderHint}` : ''}`, { leaderHint });
  }

  private async campaign(): Promise<void> {
    while (!this.stopped) {
      try {
        const leadership = await this.options.store.campaign(`${this.repo.prefix}${ELECTION}`, this.options.id);
        if (this.stopped) return void (await leadership.resign());
        await this.becomeLeader(leadership);
        await new Promise<void>((resolve) => leadership.onLost(resolve));
        this.log.warn({ monitor: this.options.id }, 'lost monitor leadership');
        this.stopTimers();
      } catch (err) {
        if (this.stopped) return;
        this.log.warn({ err: (err as Error).message }, 'monitor election failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private async becomeLeader(leadership: MetaLeadership): Promise<void> {
    // Fresh read: followers may lag the store; the fencing revision must be the store's.
    const before = this.snapshot;
    const loaded = await this.repo.load(true);
    this.leadership = leadership;
    this.adopt(before, loaded);
    await this.loadPolicies();
    // Grace starts now for every OSD: heartbeats sent to the old leader were not seen here.
    const now = this.now();
    for (const osd of loaded.osds.values()) this.lastSeen.set(osd.id, now);
    // Watches were renewed at the old leader: this one learns them as clients renew here.
    this.watchers.reset();
    this.log.info({ monitor: this.options.id, epoch: loaded.epoch }, 'monitor is leader');
    this.every(this.options.tickMs, () => this.tick());
    // A round starts only after the previous one finished: the transfer rate stays bounded even when
    // a round takes longer than the interval.
    if (this.options.leaderBalance.intervalMs > 0) this.every(this.options.leaderBalance.intervalMs, () => this.balanceLeaders());
  }

  /** Runs `work` every `ms` after the previous run ended, while this monitor leads. */
  private every(ms: number, work: () => Promise<unknown>): void {
    const generation = this.generation;
    const schedule = (): void => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void work()
          .catch((err: Error) => this.log.warn({ err: err.message }, 'periodic monitor task failed'))
          .finally(() => {
            if (this.generation === generation) schedule();
          });
      }, ms);
      this.timers.add(timer);
    };
    schedule();
  }

  private stopTimers(): void {
    this.generation++;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private adopt(before: MonitorState, after: MonitorState): void {
    this.snapshot = after;
    if (after.epoch > before.epoch) for (const listener of this.listeners) listener(before, after);
  }

  /** Followers learn changes from the store; a burst of events is one reload. */
  private scheduleReload(): void {
    if (this.isLeader || this.reloading) return;
    this.reloading = (async () => {
      await new Promise((r) => setTimeout(r, 10));
      try {
        const loaded = await this.repo.load();
        if (!this.isLeader && loaded.epoch > this.snapshot.epoch) {
          const policyChanged = [...loaded.policies].some(([kind, p]) => this.snapshot.policies.get(kind)?.version !== p.version);
          this.adopt(this.snapshot, loaded);
          if (policyChanged) await this.loadPolicies();
        }
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'map reload failed');
      } finally {
        this.reloading = undefined;
      }
    })();
  }

  /** Puts the stored versions named in the map in force (built-in when none is stored). */
  private async loadPolicies(): Promise<void> {
    for (const kind of ['placement', 'leader'] as const) {
      const info = this.snapshot.policies.get(kind);
      if (!info || info.version === 0) {
        if (this.policies.active(kind).version !== 0) this.policies.activate(this.policies.builtin(kind));
        continue;
      }
      const active = this.policies.active(kind);
      if (active.version === info.version && active.module.sha256 === info.sha256) continue;
      const stored = (await this.repo.policies(kind)).find((p) => p.version === info.version);
      if (!stored) {
        this.log.error({ kind, version: info.version }, 'policy in the map is missing from the store; keeping the one in force');
        continue;
      }
      this.policies.activate(this.policies.load(kind, stored.name, stored.version, stored.bytes));
    }
  }

  /** Runs `plan` against the current snapshot and commits it as the next epoch. Leader only. */
  mutate(plan: (state: MonitorState) => Promise<MutationPlan | undefined> | MutationPlan | undefined): Promise<MonitorState> {
    const run = this.queue.then(async () => {
      for (let attempt = 0; ; attempt++) {
        if (!this.isLeader) throw await this.notLeader();
        try {
          return await this.commitPlan(plan);
        } catch (err) {
          if (!isFastblockError(err, ErrorCode.BUSY) || err.context.fenced !== true) throw err;
          // The store moved under us: a deposed leader that had not noticed wrote after we were
          // elected. We hold the election key, so its write is simply the newest state: reload
          // (which also takes its revision for fencing) and plan again. Twice means something is
          // really wrong: step down and let the election sort it out.
          if (attempt === 0) {
            this.log.warn({ err: err.message }, 'map commit fenced off; reloading and retrying');
            this.adopt(this.snapshot, await this.repo.load(true));
            continue;
          }
          this.log.warn({ err: err.message }, 'map commit fenced off twice; stepping down');
          await this.leadership?.resign();
          this.stopTimers();
          this.scheduleReload();
          throw await this.notLeader();
        }
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async commitPlan(plan: (state: MonitorState) => Promise<MutationPlan | undefined> | MutationPlan | undefined): Promise<MonitorState> {
    const state = this.snapshot;
    const planned = await plan(state);
    if (!planned) return state;
    let change = planned.change;
    if (planned.remap) {
      const osds = new Map(state.osds);
      for (const osd of change.osds ?? []) osds.set(osd.id, osd);
      for (const id of change.removeOsds ?? []) osds.delete(id);
      const pools = new Map(state.pools);
      for (const pool of change.pools ?? []) pools.set(pool.id, pool);
      const targets = planned.remap === 'all' ? [...pools.values()] : planned.remap;
      const { pgs, failures } = await remap(this.policies.placement, state, osds, targets, state.epoch + 1);
      for (const f of failures) this.log.error({ pool: f.pool, err: f.error.message }, 'placement failed; the pool keeps its mapping');
      change = { ...change, pgs: new Map([...(change.pgs ?? []), ...pgs]) };
    }
    if (isNoop(change) && !planned.extra?.length) return state;
    const next = await this.repo.commit(state, change, planned.extra);
    planned.committed?.(next);
    this.adopt(state, next);
    return next;
  }

  async boot(request: BootRequest): Promise<{ osdId: number; epoch: number }> {
    let osdId = -1;
    await this.mutate((state) => {
      const now = this.now();
      const known = [...state.osds.values()].find((o) => o.uuid === request.uuid);
      if (request.osdId >= 0 && known && known.id !== request.osdId) {
        throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `OSD uuid ${request.uuid} is registered as osd.${known.id}, not osd.${request.osdId}`, { uuid: request.uuid });
      }
      if (request.osdId >= 0 && !known && state.osds.has(request.osdId)) {
        throw new FastblockError(ErrorCode.ALREADY_EXISTS, `osd.${request.osdId} belongs to another OSD (uuid ${state.osds.get(request.osdId)!.uuid})`, { osdId: request.osdId });
      }
      osdId = known?.id ?? (request.osdId >= 0 ? request.osdId : state.nextOsdId);
      this.lastSeen.set(osdId, now);
      const base: OsdRecord = known ?? { id: osdId, uuid: request.uuid, up: false, in: true, autoOut: false, lastHeartbeatMs: now, address: request.address, shards: 0, host: '', failureDomain: '', weight: 1 };
      const record: OsdRecord = {
        ...base,
        address: request.address,
        shards: request.shards,
        host: request.host,
        failureDomain: request.failureDomain || request.host,
        weight: request.weight,
        up: true,
        in: base.in || base.autoOut,
        autoOut: false,
        lastHeartbeatMs: now,
      };
      const nextOsdId = Math.max(state.nextOsdId, osdId + 1);
      const unchanged = known && JSON.stringify(known) === JSON.stringify({ ...record, lastHeartbeatMs: known.lastHeartbeatMs });
      if (unchanged) return undefined;
      return { change: { osds: [record], nextOsdId }, remap: 'all' };
    });
    return { osdId, epoch: this.snapshot.epoch };
  }

  async heartbeat(osdId: number, reports: readonly PgReport[], usage?: StoreUsage): Promise<HeartbeatReplyMessage> {
    if (!this.isLeader) throw await this.notLeader();
    const osd = this.snapshot.osds.get(osdId);
    if (!osd) throw new FastblockError(ErrorCode.NOT_FOUND, `osd.${osdId} is not registered; boot first`, { osdId });
    const now = this.now();
    this.lastSeen.set(osdId, now);
    this.pgStatus.report(osdId, reports, now);
    if (usage) this.capacity.report(osdId, usage, now);
    if (revive(osd, now)) {
      await this.mutate((state) => {
        const current = state.osds.get(osdId);
        const revived = current && revive(current, now);
        return revived ? { change: { osds: [revived] }, remap: 'all' } : undefined;
      });
    }
    return { epoch: this.snapshot.epoch, fullOsds: this.fullOsds() };
  }

  /**
   * Up OSDs whose latest report is past fullRatio. Told to every OSD in its heartbeat reply, so a
   * leader stops taking writes for a PG before one of its followers runs out of room for the log
   * (that follower would stop: a fail-stop that moves its PGs onto OSDs that may be as full). A
   * down OSD is left out: it takes no appends, and its PGs must stay writable while it is away.
   */
  fullOsds(): number[] {
    const ratio = this.options.fullRatio ?? DEFAULT_FULL_RATIO;
    const up = { has: (osd: number) => this.snapshot.osds.get(osd)?.up === true };
    return this.capacity.fullerThan(ratio, up);
  }

  /** Leader: marks silent OSDs down, then out. Exposed for tests that drive time themselves. */
  async tick(): Promise<void> {
    if (!this.isLeader) return;
    const changed = expire(this.snapshot.osds.values(), this.lastSeen, this.now(), this.snapshot.flags, this.options.times);
    if (changed.length === 0) return;
    try {
      await this.mutate((state) => {
        const fresh = expire(state.osds.values(), this.lastSeen, this.now(), state.flags, this.options.times);
        for (const osd of fresh) if (!osd.up) this.pgStatus.forget(osd.id);
        return fresh.length ? { change: { osds: fresh }, remap: 'all' } : undefined;
      });
      for (const osd of changed) this.log.info({ osd: osd.id, up: osd.up, in: osd.in }, 'OSD state changed');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'OSD expiry not committed');
    }
  }

  /** Leader: one round of leader balancing. Returns the transfers asked for. */
  async balanceLeaders(): Promise<LeaderTransfer[]> {
    if (!this.isLeader || !this.options.transferLeader) return [];
    const view = this.pgStatus.view();
    const pgs = [...this.snapshot.pgs.values()].flat().map((pg) => ({
      pool: pg.pool,
      index: pg.index,
      replicas: pg.replicas,
      leaderOsd: view.get(`${pg.pool}.${pg.index}`)?.leaderOsd ?? -1,
    }));
    const known = pgs.filter((pg) => pg.leaderOsd >= 0);
    if (known.length === 0) return [];
    const osds = [...this.snapshot.osds.values()].map(publicOsd);
    let transfers: LeaderTransfer[];
    try {
      transfers = await this.policies.leader.balance({ osds, pgs: known, maxTransfers: this.options.leaderBalance.transfersPerRound });
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'leader policy failed');
      return [];
    }
    for (const t of transfers) {
      const from = known.find((pg) => pg.pool === t.pool && pg.index === t.index)!.leaderOsd;
      const leader = this.snapshot.osds.get(from);
      if (!leader) continue;
      this.options.transferLeader!(publicOsd(leader), t).catch((err: Error) => this.log.warn({ pg: `${t.pool}.${t.index}`, err: err.message }, 'leader transfer failed'));
    }
    return transfers;
  }
}
