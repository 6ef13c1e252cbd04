/**
 * Fake OSDs speaking the data protocol over the in-memory transport, for client unit tests. The
 * replicated state is one shared object map (replication is not what these tests are about); each
 * fake OSD answers only for the PGs it leads and hints at the leader otherwise, like a real one.
 */
import type { ClusterMap, PgMapping } from '../../kernel/contracts/cluster-map.js';
import type { InboundMessage, OutboundReply } from '../../kernel/contracts/transport.js';
import { DataOp, DataStatus, decodeDataRequest, encodeDataReply, type DataReply, type DataRequest } from '../../client/data-protocol.js';
import { InMemoryNetwork } from './in-memory-transport.js';

export interface FakeClusterOptions {
  readonly osds: number;
  readonly pgNum: number;
  readonly objectSize: number;
  readonly imageSize: number;
}

export class FakeCluster {
  readonly network = new InMemoryNetwork();
  readonly objects = new Map<string, Uint8Array>();
  /** "pool.pg" -> leading OSD; default: the first replica. */
  readonly leaders = new Map<string, number>();
  map: ClusterMap;
  requests = 0;
  /** Requests served by op (DataOp -> count), those answered NOT_LEADER or STALE_EPOCH left out. */
  readonly served = new Map<number, number>();
  /** The extents of every WRITE_EXTENTS served, in order. */
  readonly extentLists: Array<readonly number[]> = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Milliseconds each request takes (to observe concurrency). */
  delayMs = 0;
  /** When set, a request waits for what it returns before it is served (to order completions). */
  gate: ((request: DataRequest) => Promise<void> | undefined) | undefined;

  constructor(readonly options: FakeClusterOptions) {
    const pgs: PgMapping[] = [];
    for (let index = 0; index < options.pgNum; index++) {
      const replicas = [0, 1, 2].map((k) => ({ osd: (index + k) % options.osds, shard: 0 }));
      pgs.push({ pool: 1, index, replicas, epoch: 1 });
    }
    this.map = {
      epoch: 1,
      osds: Array.from({ length: options.osds }, (_, id) => ({
        id,
        address: { host: 'osd', port: 7000 + id * 10 },
        shards: 1,
        host: `host${id}`,
        failureDomain: `host${id}`,
        weight: 1,
        up: true,
        in: true,
        lastHeartbeatMs: 0,
      })),
      pools: [{ id: 1, name: 'rbd', size: 3, minSize: 2, pgNum: options.pgNum, failureDomain: 'host' }],
      pgs,
      images: [{ id: 'img1', pool: 1, name: 'disk', sizeBytes: options.imageSize, objectSizeBytes: options.objectSize, createdMs: 0 }],
      policies: [],
    };
  }

  async start(): Promise<void> {
    const transport = this.network.transport();
    for (const osd of this.map.osds) {
      await transport.listen(osd.address, { onRequest: (_c, message) => this.serve(osd.id, message) });
    }
  }

  leaderOf(pool: number, pg: number): number {
    const key = `${pool}.${pg}`;
    return this.leaders.get(key) ?? this.map.pgs.find((m) => m.pool === pool && m.index === pg)!.replicas[0].osd;
  }

  private reply(reply: DataReply, payload?: Uint8Array): OutboundReply {
    return { header: encodeDataReply(reply), payload: payload ? [payload] : undefined };
  }

  private async serve(osd: number, message: InboundMessage): Promise<OutboundReply> {
    this.requests++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      const request = decodeDataRequest(message.header);
      await this.gate?.(request);
      const epoch = this.map.epoch;
      const mapping = this.map.pgs.find((m) => m.pool === request.pool && m.index === request.pg);
      if (!mapping || !mapping.replicas.some((r) => r.osd === osd)) return this.reply({ status: DataStatus.STALE_EPOCH, epoch, message: 'PG not here' });
      const leader = this.leaderOf(request.pool, request.pg);
      if (leader !== osd) return this.reply({ status: DataStatus.NOT_LEADER, leaderHint: leader, epoch, message: '' });
      const object = this.objects.get(request.object) ?? new Uint8Array(this.options.objectSize);
      this.objects.set(request.object, object);
      this.served.set(request.op, (this.served.get(request.op) ?? 0) + 1);
      switch (request.op) {
        case DataOp.WRITE_EXTENTS: {
          if (message.payload.length !== request.length) return this.reply({ status: DataStatus.INVALID_ARGUMENT, epoch, message: 'length' });
          const extents = request.extents!;
          this.extentLists.push(extents);
          for (let i = 0, at = 0; i < extents.length; at += extents[i + 1], i += 2) object.set(message.payload.subarray(at, at + extents[i + 1]), extents[i]);
          return this.reply({ status: DataStatus.OK, epoch, message: '' });
        }
        case DataOp.READ:
          return this.reply({ status: DataStatus.OK, epoch, message: '' }, object.slice(request.offset, request.offset + request.length));
        case DataOp.WRITE:
          if (message.payload.length !== request.length) return this.reply({ status: DataStatus.INVALID_ARGUMENT, epoch, message: 'length' });
          object.set(message.payload, request.offset);
          return this.reply({ status: DataStatus.OK, epoch, message: '' });
        default:
          object.fill(0, request.offset, request.offset + request.length);
          return this.reply({ status: DataStatus.OK, epoch, message: '' });
      }
    } finally {
      this.inFlight--;
    }
  }
}
