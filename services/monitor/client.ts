/**
 * MonitorClient: what OSDs and the client library use to talk to the monitors. Give it every
 * monitor's address; it finds the leader for writes (following NOT_LEADER hints), keeps one
 * subscription to the map (any monitor serves it), applies deltas, and re-subscribes — to another
 * monitor if need be — when its connection drops or a delta does not follow its epoch.
 *
 *   const monitors = new MonitorClient({ transport, monitors: ['127.0.0.1:7700'], name: 'osd.3' });
 *   monitors.onMap((map) => ...);
 *   await monitors.subscribe();                    // resolves with the first full map
 *   const { osdId } = await monitors.boot({ osdId: -1, uuid, address, shards, host, failureDomain: '', weight: 1 });
 *   await monitors.heartbeat({ osdId, epoch: monitors.map!.epoch, pgs: [...] });
 */
import { parseAddress, formatAddress } from '../../kernel/address.js';
import type { ClusterMap, NetAddress, PolicyInfo, Transport, TransportConnection } from '../../kernel/contracts/index.js';
import { ErrorCode, FastblockError, isFastblockError } from '../../kernel/errors.js';
import { runAdmin } from '../../kernel/rpc/control.js';
import { call, notify } from '../../kernel/rpc/rpc-client.js';
import type { OsdUsage } from './capacity.js';
import { applyDelta } from './map-delta.js';
import { MonitorMessages, MonitorMethods, MonitorPayloads, type BootReplyMessage, type BootRequestMessage, type HeartbeatReplyMessage, type HeartbeatRequestMessage, type MapUpdate, type PgViewMessage } from './protocol.js';

export interface MonitorClientOptions {
  readonly transport: Transport;
  /** "host:port" or NetAddress of every monitor. */
  readonly monitors: readonly (string | NetAddress)[];
  /** For the monitors' logs: "osd.3", "client". */
  readonly name: string;
  readonly requestTimeoutMs?: number;
}

export type MapListener = (map: ClusterMap) => void;

const MAX_HOPS = 6;

export class MonitorClient {
  private current: ClusterMap | undefined;
  private readonly addresses: string[];
  private leader: string | undefined;
  private subscribed: { address: string; connection: TransportConnection; stop: () => void } | undefined;
  private readonly listeners = new Set<MapListener>();
  private readonly waiters: { epoch: number; resolve: () => void }[] = [];
  private closed = false;
  private resubscribing = false;

  constructor(private readonly options: MonitorClientOptions) {
    if (options.monitors.length === 0) throw new FastblockError(ErrorCode.CONFIG_INVALID, 'MonitorClient needs at least one monitor address');
    this.addresses = options.monitors.map((m) => (typeof m === 'string' ? formatAddress(parseAddress(m, 'monitor address')) : formatAddress(m)));
  }

  /** The newest map received, if any. */
  get map(): ClusterMap | undefined {
    return this.current;
  }

  onMap(listener: MapListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private connection(address: string): TransportConnection {
    return this.options.transport.connect({ address: parseAddress(address), shard: 0 });
  }

  private get timeout(): { timeoutMs: number } {
    return { timeoutMs: this.options.requestTimeoutMs ?? 5000 };
  }

  /**
   * Runs `work` against the leader: starts with the last known leader, follows NOT_LEADER hints,
   * and moves on to the next monitor when one does not answer. `idempotent` work is also retried
   * when its outcome is unknown (the connection dropped or timed out after sending); other work
   * only when it surely did not run, so a change is never applied twice behind the caller's back.
   */
  async onLeader<T>(work: (connection: TransportConnection) => Promise<T>, idempotent = true): Promise<T> {
    let lastError: unknown;
    const tried = new Set<string>();
    let next: string | undefined = this.leader ?? this.addresses[0];
    for (let hop = 0; hop < MAX_HOPS + this.addresses.length && next !== undefined; hop++) {
      const address: string = next;
      tried.add(address);
      try {
        const result = await work(this.connection(address));
        this.leader = address;
        return result;
      } catch (err) {
        lastError = err;
        const hint = isFastblockError(err, ErrorCode.NOT_LEADER) ? (err.context.leaderHint as string | undefined) : undefined;
        if (!isFastblockError(err)) throw err;
        const unsent = (err.code === ErrorCode.TIMEOUT || err.code === ErrorCode.CLOSED) && err.context.sent === false;
        const unknownOutcome = err.code === ErrorCode.TIMEOUT || err.code === ErrorCode.CLOSED || err.code === ErrorCode.IO_ERROR;
        const retriable = err.code === ErrorCode.NOT_LEADER || unsent || (idempotent && unknownOutcome);
        // A monitor we could not hear from is no longer the one to start with.
        if (unknownOutcome && this.leader === address) this.leader = undefined;
        if (!retriable) throw err;
        if (hint && hint !== address) next = hint;
        else {
          next = this.addresses.find((a) => !tried.has(a));
          // Everyone said "not me" (an election in progress): wait a little and start over.
          if (next === undefined && hop < MAX_HOPS) {
            await new Promise((r) => setTimeout(r, 250));
            tried.clear();
            next = this.addresses[hop % this.addresses.length];
          }
        }
      }
    }
    throw lastError instanceof Error ? lastError : new FastblockError(ErrorCode.TIMEOUT, 'no monitor answered', { monitors: this.addresses });
  }

  async boot(request: BootRequestMessage): Promise<BootReplyMessage> {
    return await this.onLeader(async (c) => (await call(c, MonitorMethods.Boot, request, undefined, this.timeout)).response);
  }

  async heartbeat(request: HeartbeatRequestMessage): Promise<HeartbeatReplyMessage> {
    const { pgs, ...header } = request;
    const payload = [MonitorPayloads.PgStates.encode({ pgs })];
    return await this.onLeader(async (c) => (await call(c, MonitorMethods.Heartbeat, header, payload, this.timeout)).response);
  }

  /**
   * An admin command (kernel AdminCommands), on the leader. A change whose connection failed
   * mid-call is reported (TIMEOUT or CLOSED: outcome unknown), not retried.
   */
  async admin(command: string, args: Readonly<Record<string, unknown>> = {}): Promise<unknown> {
    return await this.onLeader((c) => runAdmin(c, command, args, this.timeout), false);
  }

  /** PG states and leaders as the leader monitor knows them from heartbeats. */
  async pgStatus(): Promise<PgViewMessage[]> {
    return await this.onLeader(async (c) => MonitorPayloads.PgViews.decode((await call(c, MonitorMethods.PgStatus, {}, undefined, this.timeout)).payload).pgs);
  }

  /** How full each OSD's store is, from its latest heartbeat to the leader monitor. */
  async osdUsage(): Promise<OsdUsage[]> {
    return await this.onLeader(async (c) => MonitorPayloads.OsdUsages.decode((await call(c, MonitorMethods.OsdUsage, {}, undefined, this.timeout)).payload).osds);
  }

  /** A policy as payload (no size limit but the monitor's): a dry run, or with apply a new version in force. */
  async uploadPolicy(kind: string, name: string, bytes: Uint8Array, apply: boolean): Promise<unknown> {
    return await this.onLeader(async (c) => JSON.parse((await call(c, MonitorMethods.PolicyUpload, { kind, name, apply }, [bytes], this.timeout)).response.reportJson) as unknown, !apply);
  }

  /** A stored policy version (-1: the one in force, 0: built-in) and its bytes. */
  async downloadPolicy(kind: string, version: number): Promise<{ policy: PolicyInfo; bytes: Uint8Array }> {
    return await this.onLeader(async (c) => {
      const { response, payload } = await call(c, MonitorMethods.PolicyDownload, { kind, version }, undefined, this.timeout);
      return { policy: response.policy, bytes: Uint8Array.from(payload) };
    });
  }

  /** The full map once, from any monitor. */
  async fetchMap(): Promise<ClusterMap> {
    for (const address of this.addresses) {
      try {
        const { payload } = await call(this.connection(address), MonitorMethods.GetMap, {}, undefined, this.timeout);
        const { full } = MonitorPayloads.MapUpdate.decode(payload);
        if (full) return full;
      } catch (err) {
        if (!isFastblockError(err)) throw err;
      }
    }
    throw new FastblockError(ErrorCode.TIMEOUT, 'no monitor answered GetMap', { monitors: this.addresses });
  }

  /** Subscribes (to the first monitor that answers) and resolves once a map is held. */
  async subscribe(): Promise<ClusterMap> {
    await this.resubscribe();
    if (!this.current) await this.waitForEpoch(0);
    return this.current!;
  }

  /** Resolves when the held map reaches `epoch`. */
  waitForEpoch(epoch: number): Promise<void> {
    if (this.current && this.current.epoch >= epoch) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ epoch, resolve }));
  }

  private resubscribeInBackground(): void {
    // Failures here mean the transport itself is gone (closed under us): nothing left to do.
    this.resubscribe().catch(() => undefined);
  }

  private async resubscribe(): Promise<void> {
    if (this.resubscribing || this.closed) return;
    this.resubscribing = true;
    try {
      this.subscribed?.stop();
      this.subscribed = undefined;
      const start = this.addresses.indexOf(this.leader ?? '') + 1;
      for (let attempt = 0; !this.closed; attempt++) {
        const address = this.addresses[(start + attempt) % this.addresses.length];
        const connection = this.connection(address);
        const stopMessages = connection.onMessage?.((message) => {
          if (message.method === MonitorMessages.MapPush.id) this.receive(connection, MonitorPayloads.MapUpdate.decode(message.payload));
        });
        if (!stopMessages) throw new FastblockError(ErrorCode.INTERNAL, 'the transport cannot receive server pushes (TransportConnection.onMessage)');
        try {
          await call(connection, MonitorMethods.Subscribe, { knownEpoch: this.current?.epoch ?? 0, name: this.options.name }, undefined, this.timeout);
        } catch (err) {
          stopMessages();
          if (!isFastblockError(err)) throw err;
          if (attempt >= this.addresses.length) await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        const stopState = connection.onStateChange((state) => {
          if (state !== 'connected' && !this.closed) this.resubscribeInBackground();
        });
        this.subscribed = { address, connection, stop: () => (stopMessages(), stopState()) };
        return;
      }
    } finally {
      this.resubscribing = false;
    }
  }

  private receive(connection: TransportConnection, update: MapUpdate): void {
    if (this.subscribed && this.subscribed.connection !== connection) return;
    let next: ClusterMap;
    // A monitor that lags the one we left may replay epochs we hold already.
    if (update.delta && this.current && update.delta.epoch <= this.current.epoch) return;
    if (update.full) next = update.full;
    else if (update.delta && this.current && update.delta.fromEpoch === this.current.epoch) next = applyDelta(this.current, update.delta);
    else {
      // A gap: start over from what we hold; the monitor answers with deltas or the full map.
      this.resubscribeInBackground();
      return;
    }
    if (this.current && next.epoch < this.current.epoch) return;
    this.current = next;
    notify(connection, MonitorMessages.MapAck, { epoch: next.epoch });
    for (const listener of this.listeners) listener(next);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (next.epoch >= this.waiters[i].epoch) this.waiters.splice(i, 1)[0].resolve();
    }
  }

  close(): void {
    this.closed = true;
    this.subscribed?.stop();
    this.subscribed = undefined;
  }
}
