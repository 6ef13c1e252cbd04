/**
 * MetaStore on etcd (production): several monitors share one etcd cluster, elect a leader through
 * an etcd election (a lease-backed key; the lease expires `electionTtlS` after the leader dies), and
 * the leader writes the map with compare-and-swap transactions.
 */
import { Etcd3, type IKeyValue, type IWatchResponse, type Campaign } from 'etcd3';
import type { MetaCompare, MetaEntry, MetaEvent, MetaLeadership, MetaOp, MetaStore, MetaTxnResult } from '../../../kernel/contracts/index.js';
import { ErrorCode, FastblockError } from '../../../kernel/errors.js';

export interface EtcdStoreOptions {
  /** "http://host:port" URLs of the etcd members. */
  readonly endpoints: readonly string[];
  /** Seconds a dead leader keeps its leadership before another monitor may take it. */
  readonly electionTtlS?: number;
  /** Milliseconds one etcd call may take. */
  readonly callTimeoutMs?: number;
}

function entryOf(kv: IKeyValue): MetaEntry {
  return { key: kv.key.toString(), value: new Uint8Array(kv.value), modRevision: Number(kv.mod_revision) };
}

function unavailable(err: unknown, what: string): FastblockError {
  return new FastblockError(ErrorCode.IO_ERROR, `etcd ${what} failed: ${(err as Error).message}`, { what }, { cause: err });
}

class EtcdLeadership implements MetaLeadership {
  private leader = true;
  private readonly lostListeners: (() => void)[] = [];

  constructor(private readonly campaign: Campaign) {
    campaign.on('error', () => this.lose());
  }

  get isLeader(): boolean {
    return this.leader;
  }

  onLost(listener: () => void): void {
    this.lostListeners.push(listener);
  }

  lose(): void {
    if (!this.leader) return;
    this.leader = false;
    for (const listener of this.lostListeners) listener();
  }

  async resign(): Promise<void> {
    this.leader = false;
    await this.campaign.resign().catch(() => undefined);
  }
}

export class EtcdMetaStore implements MetaStore {
  readonly kind = 'etcd';
  private readonly client: Etcd3;
  private readonly electionTtlS: number;
  private readonly leaderships = new Set<EtcdLeadership>();

  constructor(options: EtcdStoreOptions) {
    if (options.endpoints.length === 0) throw new FastblockError(ErrorCode.CONFIG_INVALID, 'etcd store needs at least one endpoint');
    const timeout = options.callTimeoutMs ?? 5000;
    this.client = new Etcd3({
      hosts: [...options.endpoints],
      dialTimeout: timeout,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeout }),
    });
    this.electionTtlS = options.electionTtlS ?? 3;
  }

  async get(key: string): Promise<MetaEntry | undefined> {
    try {
      const res = await this.client.get(key).exec();
      return res.kvs.length > 0 ? entryOf(res.kvs[0]) : undefined;
    } catch (err) {
      throw unavailable(err, `get ${key}`);
    }
  }

  async list(prefix: string): Promise<MetaEntry[]> {
    try {
      const res = await this.client.getAll().prefix(prefix).sort('Key', 'Ascend').exec();
      return res.kvs.map(entryOf);
    } catch (err) {
      throw unavailable(err, `list ${prefix}`);
    }
  }

  async txn(compares: readonly MetaCompare[], ops: readonly MetaOp[]): Promise<MetaTxnResult> {
    const [first, ...rest] = compares;
    // etcd's builder starts from a compare; a key's Version is never negative, so this one always holds.
    let builder = first ? this.client.if(first.key, 'Mod', '==', first.modRevision) : this.client.if('\0', 'Version', '>', -1);
    for (const c of rest) builder = builder.and(c.key, 'Mod', '==', c.modRevision);
    builder = builder.then(
      ...ops.map((op) => {
        if (op.type === 'put') return this.client.put(op.key).value(Buffer.from(op.value.buffer, op.value.byteOffset, op.value.byteLength));
        if (op.type === 'delete') return this.client.delete().key(op.key);
        return this.client.delete().prefix(op.prefix);
      }),
    );
    try {
      const res = await builder.commit();
      return { succeeded: res.succeeded, revision: Number(res.header.revision) };
    } catch (err) {
      throw unavailable(err, 'txn');
    }
  }

  watch(prefix: string, fromRevision: number, listener: (events: readonly MetaEvent[]) => void): () => void {
    let stopped = false;
    let cancel: (() => Promise<void>) | undefined;
    void this.client
      .watch()
      .prefix(prefix)
      .startRevision(String(fromRevision + 1))
      .create()
      .then((watcher) => {
        cancel = () => watcher.cancel();
        if (stopped) return void watcher.cancel();
        watcher.on('data', (res: IWatchResponse) => {
          const events: MetaEvent[] = res.events.map((e) =>
            e.type === 'Put' ? { type: 'put', entry: entryOf(e.kv) } : { type: 'delete', key: e.kv.key.toString(), modRevision: Number(e.kv.mod_revision) },
          );
          if (events.length > 0) listener(events);
        });
      })
      .catch(() => undefined);
    return () => {
      stopped = true;
      void cancel?.();
    };
  }

  async campaign(election: string, candidateId: string): Promise<MetaLeadership> {
    const campaign = this.client.election(election, this.electionTtlS).campaign(candidateId);
    await new Promise<void>((resolve, reject) => {
      campaign.once('elected', () => resolve());
      campaign.once('error', (err: Error) => reject(unavailable(err, `campaign ${election}`)));
    });
    const leadership = new EtcdLeadership(campaign);
    this.leaderships.add(leadership);
    return leadership;
  }

  /** The value the current leader of `election` campaigned with (its candidate id), if any. */
  async leaderOf(election: string): Promise<string | undefined> {
    try {
      return await this.client.election(election).leader();
    } catch (err) {
      throw unavailable(err, `leader of ${election}`);
    }
  }

  async close(): Promise<void> {
    for (const leadership of this.leaderships) await leadership.resign();
    this.client.close();
  }
}
