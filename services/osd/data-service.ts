/**
 * The data service of one shard: byte-range I/O on the objects of the PGs this shard hosts.
 * Mutations become raft entries and are acknowledged only once committed (durable on a majority)
 * and applied here; reads are served by the leader after a read barrier (ReadIndex or lease) and
 * after the state machine has applied up to it, so they are linearizable.
 */
import type { Logger } from 'pino';
import type { ObjectStore, PgId } from '../../kernel/contracts/store.js';
import type { InboundConnection, InboundMessage, OutboundReply } from '../../kernel/contracts/transport.js';
import { ErrorCode, FastblockError, isFastblockError } from '../../kernel/errors.js';
import { DataOp, DataStatus, decodeDataRequest, encodeDataReply, type DataRequest, type DataStatus as Status } from '../../client/data-protocol.js';
import { encodePgExtentsOp, encodePgOp } from './pg-op.js';
import { type OpMeter, requestOp } from './op-meter.js';

/** What the data service needs of a hosted PG (services/osd/pg.ts). */
export interface ServedPg {
  readonly id: PgId;
  /** The OSD this replica believes leads the PG, if any. */
  readonly leader: number | undefined;
  readonly isLeader: boolean;
  /** Proposes a PG op; resolves once it is committed and applied on this replica. */
  propose(op: Uint8Array): Promise<void>;
  /** Resolves when a read issued now may be served linearizably from the local state machine. */
  readBarrier(): Promise<void>;
}

/** What the data service needs of the shard: its map epoch and its PGs. */
export interface PgDirectory {
  readonly epoch: number;
  /** The PG if hosted here; undefined if not (yet, or any more). */
  pg(pool: number, index: number): ServedPg | undefined;
  /** True when the PG's mapping in our map does not list this OSD. */
  notMine(pool: number, index: number): boolean;
  /**
   * Why writes to the PG are refused now, or undefined when they are not: this store is past
   * osd.fullRatio, or the monitor reported an OSD holding one of the PG's replicas past
   * monitor.fullRatio.
   */
  writesRefused(pool: number, index: number): string | undefined;
}

export function pgId(pool: number, index: number): PgId {
  return `${pool}.${index.toString(16)}`;
}

const STATUS_OF: Partial<Record<ErrorCode, Status>> = {
  [ErrorCode.NOT_LEADER]: DataStatus.NOT_LEADER,
  [ErrorCode.STALE_EPOCH]: DataStatus.STALE_EPOCH,
  [ErrorCode.NO_SPACE]: DataStatus.NO_SPACE,
  [ErrorCode.TIMEOUT]: DataStatus.TIMEOUT,
  [ErrorCode.INVALID_ARGUMENT]: DataStatus.INVALID_ARGUMENT,
};

export class DataService {
  /** The OK reply of the current epoch: what nearly every request gets, encoded once. */
  private ok: { epoch: number; reply: OutboundReply } = { epoch: -1, reply: { header: new Uint8Array(0) } };

  constructor(
    private readonly directory: PgDirectory,
    private readonly objects: ObjectStore,
    private readonly logger: Logger,
    /** Told of every request answered (the shard's op meter). */
    private readonly meter?: OpMeter,
  ) {}

  /**
   * Answers one data request. A mutation is answered from its proposal's settlement directly (no
   * async frame, one promise of its own): this runs for every write on the leader.
   */
  handle(connection: InboundConnection, message: InboundMessage): Promise<OutboundReply> | OutboundReply {
    // The op is read first: the receive buffer may be reused once handled.
    const op = requestOp(message.header);
    const started = performance.now();
    const payloadBytes = message.payload.length;
    let request: DataRequest;
    try {
      request = decodeDataRequest(message.header);
    } catch (err) {
      if (isFastblockError(err, ErrorCode.INVALID_ARGUMENT)) return this.served(op, payloadBytes, this.reply(DataStatus.INVALID_ARGUMENT, err.message), started);
      // A header that does not decode is a broken peer: the transport closes that connection.
      this.logger.warn({ remote: connection.remote, err }, 'undecodable data request');
      throw err;
    }
    if ((request.op === DataOp.WRITE || request.op === DataOp.WRITE_EXTENTS) && message.payload.length !== request.length) {
      return this.served(op, payloadBytes, this.reply(DataStatus.INVALID_ARGUMENT, `${request.op === DataOp.WRITE ? 'WRITE' : 'WRITE_EXTENTS'} of ${request.length} bytes carried ${message.payload.length}`), started);
    }
    const pg = this.directory.pg(request.pool, request.pg);
    if (!pg) {
      // Routed with an older map than ours: the client must refresh. Otherwise we may be the ones
      // behind (the PG is coming here): let the client try another replica.
      if (request.epoch < this.directory.epoch && this.directory.notMine(request.pool, request.pg)) {
        return this.served(op, payloadBytes, this.reply(DataStatus.STALE_EPOCH, `PG ${pgId(request.pool, request.pg)} is not on this OSD`), started);
      }
      return this.served(op, payloadBytes, this.reply(DataStatus.NOT_LEADER, `PG ${pgId(request.pool, request.pg)} is not open here yet`), started);
    }
    if (!pg.isLeader) return this.served(op, payloadBytes, this.reply(DataStatus.NOT_LEADER, 'not the leader', pg.leader), started);
    let proposal: Promise<void>;
    try {
      switch (request.op) {
        case DataOp.READ:
          return this.read(pg, request).then((reply) => this.served(op, payloadBytes, reply, started));
        case DataOp.WRITE: {
          // A full store keeps its last room for the raft logs: a log append that finds no space
          // would stop the replica, where a refused write only fails its client's request.
          const refused = this.directory.writesRefused(request.pool, request.pg);
          if (refused !== undefined) return this.served(op, payloadBytes, this.reply(DataStatus.NO_SPACE, refused), started);
          // The one copy of the payload: from the receive buffer into the raft entry.
          // The request's hints (NOCACHE) ride in the entry, for whichever replica applies it as leader.
          proposal = pg.propose(encodePgOp(DataOp.WRITE, request.object, request.offset, request.length, message.payload, request.flags));
          break;
        }
        case DataOp.WRITE_EXTENTS: {
          // As WRITE: the extents were validated by decodeDataRequest, the payload's length above.
          const refused = this.directory.writesRefused(request.pool, request.pg);
          if (refused !== undefined) return this.served(op, payloadBytes, this.reply(DataStatus.NO_SPACE, refused), started);
          proposal = pg.propose(encodePgExtentsOp(request.object, request.extents!, message.payload, request.flags));
          break;
        }
        case DataOp.DISCARD:
        case DataOp.WRITE_ZEROES:
          proposal = pg.propose(encodePgOp(request.op, request.object, request.offset, request.length));
          break;
        default:
          return this.served(op, payloadBytes, this.reply(DataStatus.INVALID_ARGUMENT, `unknown data op ${request.op as number}`), started);
      }
    } catch (err) {
      return this.served(op, payloadBytes, this.failed(err, pg, request), started);
    }
    return proposal.then(
      () => this.served(op, payloadBytes, this.okReply(), started),
      (err: unknown) => this.served(op, payloadBytes, this.failed(err, pg, request), started),
    );
  }

  private async read(pg: ServedPg, request: DataRequest): Promise<OutboundReply> {
    try {
      await pg.readBarrier();
      const bytes = await this.objects.read(pg.id, request.object, request.offset, request.length);
      return { header: encodeDataReply({ status: DataStatus.OK, epoch: this.directory.epoch, message: '' }), payload: [bytes] };
    } catch (err) {
      return this.failed(err, pg, request);
    }
  }

  private served(op: number, payloadBytes: number, reply: OutboundReply, started: number): OutboundReply {
    this.meter?.record(op, payloadBytes, reply, started);
    return reply;
  }

  /** The reply to a request that failed with `err`. */
  private failed(err: unknown, pg: ServedPg, request: DataRequest): OutboundReply {
    const status = isFastblockError(err) ? STATUS_OF[err.code] : undefined;
    if (status !== undefined) return this.reply(status, (err as FastblockError).message, status === DataStatus.NOT_LEADER ? pg.leader : undefined);
    this.logger.error({ err, pg: pg.id, object: request.object }, 'data request failed');
    return this.reply(DataStatus.IO_ERROR, err instanceof Error ? err.message : String(err));
  }

  private okReply(): OutboundReply {
    const epoch = this.directory.epoch;
    if (this.ok.epoch !== epoch) this.ok = { epoch, reply: this.reply(DataStatus.OK, '') };
    return this.ok.reply;
  }

  private reply(status: Status, message: string, leaderHint?: number): OutboundReply {
    return { header: encodeDataReply({ status, leaderHint, epoch: this.directory.epoch, message }) };
  }
}
