/**
 * One I/O on one object, carried to the PG's leader and retried until it succeeds, fails for
 * good, or runs out of time. What is retried and why it is safe:
 *
 * - NOT_LEADER, STALE_EPOCH, a refused connection: the request was not accepted anywhere; retry
 *   at the hinted leader or with a fresher map.
 * - TIMEOUT and CLOSED (outcome unknown): a read is retried freely. A write is retried only as the
 *   very same request (same object, offset and bytes; a WRITE_EXTENTS the same extents). Block writes are idempotent: applying the
 *   same bytes at the same place once or twice leaves the same state. Ordering cannot betray it:
 *   the caller has not seen this write complete, so no later write of its own to the same range
 *   depends on it yet; and a lost first attempt can only be applied at a raft log position before
 *   the retry's (it was sent earlier on the same FIFO connection, or it sits in a deposed leader's
 *   log, which a new leader either keeps before its own entries or discards). So the first
 *   attempt can never land after a write the caller issues once the retry has been acknowledged.
 * - Everything else (NO_SPACE, INVALID_ARGUMENT, IO_ERROR) is final.
 *
 * Success is reported only on an OK reply; when the time bound runs out the caller gets TIMEOUT.
 */
import type { InboundMessage, Payload, RemoteEndpoint, RequestOptions, Transport, TransportConnection } from '../kernel/contracts/transport.js';
import { ErrorCode, FastblockError, assert, isFastblockError } from '../kernel/errors.js';
import { DATA_METHOD_IO, DataOp, DataStatus, dataReplyIsOk, decodeDataReply, encodeExtentsRequestHeader, encodeRequestHeader, type DataReply } from './data-protocol.js';
import type { ClusterMapSource } from './map-source.js';
import type { ObjectRef } from './object-ref.js';
import type { PgRoute, PgRouter } from './pg-router.js';

export interface RetryPolicy {
  /** Total time an I/O may take, retries included. */
  readonly opTimeoutMs: number;
  /** Time one attempt may take before it is treated as lost. */
  readonly attemptTimeoutMs: number;
  /** First backoff between attempts; doubles up to maxBackoffMs. */
  readonly minBackoffMs: number;
  readonly maxBackoffMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { opTimeoutMs: 60_000, attemptTimeoutMs: 5_000, minBackoffMs: 5, maxBackoffMs: 500 };

export interface ObjectRequest {
  readonly op: DataOp;
  readonly pool: number;
  readonly object: ObjectRef;
  readonly offset: number;
  readonly length: number;
  readonly payload?: Payload;
  /**
   * WRITE_EXTENTS only: offset0, length0, ... inside the object (ascending, not overlapping), the
   * payload their bytes in order, `length` their total; `offset` unused.
   */
  readonly extents?: readonly number[];
  /** READ: where the bytes go, exactly `length` long. */
  readonly into?: Uint8Array;
  /** DataRequest.flags (DataFlag bits, hints); absent or 0 for none. */
  readonly flags?: number;
  /**
   * Called once when the request has settled, either way, just before its promise does: lets the
   * caller give back what the request held (an in-flight slot) without a reaction of its own.
   */
  settled?(): void;
}

/**
 * What an attempt's reply said, read while its bytes were still lent to us: undefined for
 * success (a READ's bytes are then in the request's `into`), otherwise the decoded reply. The
 * transport reuses the reply's receive buffer once this is read (a READ's reply kept as a view
 * pinned its 256 KiB slab, so reads allocated a fresh slab every ~50). Success is undefined, not
 * an object, because resolving a promise with an object costs a lookup of its `then`.
 */
type Outcome = DataReply | undefined;

/** A reply that is not OK, decoded; undefined for OK (dataReplyIsOk answers most without decoding). */
function failure(reply: InboundMessage): DataReply | undefined {
  if (dataReplyIsOk(reply.header)) return undefined;
  const decoded = decodeDataReply(reply.header);
  return decoded.status === DataStatus.OK ? undefined : decoded;
}

/** The reply to a write, discard or write-zeroes. */
function changeOutcome(reply: InboundMessage): Outcome {
  return failure(reply);
}

/** The reply to a read: its bytes are copied into the request's `into` before the buffer goes back. */
function readOutcome(reply: InboundMessage, request: ObjectRequest): Outcome {
  const failed = failure(reply);
  if (failed !== undefined) return failed;
  const into = request.into!;
  if (reply.payload.length !== request.length) {
    throw new FastblockError(ErrorCode.PROTOCOL, `read of ${request.length} bytes returned ${reply.payload.length}`, {
      object: request.object.name,
      offset: request.offset,
    });
  }
  into.set(reply.payload);
  return undefined;
}

/** An attempt on the wire: where it went and its outcome to come. */
interface Attempt {
  readonly pg: number;
  readonly route: PgRoute;
  readonly reply: Promise<Outcome>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class ObjectIo {
  /** Counters for tools and tests: how often each retry path was taken. */
  readonly stats = { attempts: 0, notLeader: 0, staleEpoch: 0, timeouts: 0, closed: 0 };
  /** The request options of a full attempt, made once rather than per request. */
  private readonly fullAttempt: RequestOptions;
  /** Connections by endpoint: the transport's own lookup builds a key string per call. */
  private connections = new WeakMap<RemoteEndpoint, TransportConnection>();

  constructor(
    private readonly transport: Transport,
    private readonly router: PgRouter,
    private readonly maps: ClusterMapSource,
    private readonly policy: RetryPolicy = DEFAULT_RETRY_POLICY,
  ) {
    this.fullAttempt = { timeoutMs: policy.attemptTimeoutMs };
  }

  /**
   * Runs the request; resolves once it succeeded (a READ's bytes are then in its `into`).
   *
   * The first attempt to a connected leader is sent here and its OK reply taken without entering
   * the retry loop: that loop is an async function whose suspended frame (every local it has) is
   * allocated per I/O, and was the gateway's largest source of garbage. Anything else (no route,
   * a connection not up, an error or a non-OK reply) goes to the loop, which treats the first
   * attempt's outcome as its own.
   */
  run(request: ObjectRequest): Promise<void> {
    let deadline: number;
    let first: Attempt | undefined;
    try {
      assert(request.op !== DataOp.READ || request.into?.length === request.length, 'a READ names where its bytes go, exactly its length');
      // The map subscription may have moved on since the last I/O: route with the newest map.
      this.router.setMap(this.maps.current());
      deadline = Date.now() + this.policy.opTimeoutMs;
      first = this.sendIfReady(request, deadline);
    } catch (err) {
      request.settled?.();
      return Promise.reject(err);
    }
    if (first === undefined) return this.retrying(request, deadline, undefined);
    const attempt = first;
    return attempt.reply.then(
      (failed) => {
        if (failed !== undefined) return this.retrying(request, deadline, { ...attempt, reply: Promise.resolve(failed) });
        request.settled?.();
      },
      () => this.retrying(request, deadline, attempt),
    );
  }

  /** Sends the request when its PG's route is known and the connection is up; otherwise undefined. */
  private sendIfReady(request: ObjectRequest, deadline: number): Attempt | undefined {
    const pg = this.router.pgOfHash(request.pool, request.object.hash);
    let route: PgRoute;
    try {
      route = this.router.route(request.pool, pg);
    } catch {
      return undefined;
    }
    const connection = this.connectionTo(route.endpoint);
    if (connection.state !== 'connected') return undefined;
    this.stats.attempts++;
    return { pg, route, reply: this.send(connection, request, pg, route, deadline) };
  }

  private send(connection: TransportConnection, request: ObjectRequest, pg: number, route: PgRoute, deadline: number): Promise<Outcome> {
    const header =
      request.extents === undefined
        ? encodeRequestHeader(request.op, request.pool, pg, request.object.field, request.offset, request.length, route.epoch, request.flags)
        : encodeExtentsRequestHeader(request.pool, pg, request.object.field, request.length, route.epoch, request.extents, request.flags);
    const options = this.attemptOptions(connection, deadline);
    const take = request.op === DataOp.READ ? (reply: InboundMessage) => readOutcome(reply, request) : changeOutcome;
    if (connection.requestBorrowed !== undefined) return connection.requestBorrowed(DATA_METHOD_IO, header, request.payload, take, options);
    return connection.request(DATA_METHOD_IO, header, request.payload, options).then(take);
  }

  /** The retry loop, then the request's settled(). */
  private async retrying(request: ObjectRequest, deadline: number, first: Attempt | undefined): Promise<void> {
    try {
      await this.retryLoop(request, deadline, first);
    } finally {
      request.settled?.();
    }
  }

  /** Attempts until one succeeds; `first` is an attempt already sent, whose outcome counts as the loop's first. */
  private async retryLoop(request: ObjectRequest, deadline: number, first: Attempt | undefined): Promise<void> {
    let backoff = this.policy.minBackoffMs;
    let lastError = 'none';
    const pause = async () => {
      await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())));
      backoff = Math.min(backoff * 2, this.policy.maxBackoffMs);
    };
    const object = request.object;
    for (let attempt = 1; Date.now() < deadline || first !== undefined; attempt++) {
      let pg: number;
      let route: PgRoute;
      let sent: Promise<Outcome>;
      if (first !== undefined) {
        ({ pg, route, reply: sent } = first);
        first = undefined;
      } else {
        this.stats.attempts++;
        pg = this.router.pgOfHash(request.pool, object.hash);
        try {
          route = this.router.route(request.pool, pg);
        } catch (err) {
          if (!isFastblockError(err, ErrorCode.STALE_EPOCH)) throw err;
          lastError = err.message;
          await this.refreshMap(this.router.epoch + 1, deadline);
          await pause();
          continue;
        }
        const connection = this.connectionTo(route.endpoint);
        if (connection.state === 'backoff') {
          // That OSD just failed to connect: rather than wait out its reconnect, try the next replica.
          lastError = `osd.${route.osd} unreachable`;
          this.router.skip(request.pool, pg, route.osd);
          if (attempt % this.router.replicaCount(request.pool, pg) === 0) await pause();
          continue;
        }
        sent = this.send(connection, request, pg, route, deadline);
      }
      let reply: Outcome;
      try {
        reply = await sent;
      } catch (err) {
        if (isFastblockError(err, ErrorCode.BUSY)) {
          // The connection's send buffer is full: nothing was sent; wait and send again.
          lastError = `BUSY towards osd.${route.osd}`;
          await pause();
          continue;
        }
        if (!isFastblockError(err) || (err.code !== ErrorCode.TIMEOUT && err.code !== ErrorCode.CLOSED)) throw err;
        // Outcome unknown: the same request is retried (see the header comment), at the next replica.
        if (err.code === ErrorCode.TIMEOUT) this.stats.timeouts++;
        else this.stats.closed++;
        lastError = `${err.code} from osd.${route.osd}`;
        this.router.skip(request.pool, pg, route.osd);
        void this.refreshMap(undefined, deadline).catch(() => undefined);
        await pause();
        continue;
      }
      if (reply === undefined) return;
      switch (reply.status) {
        case DataStatus.NOT_LEADER:
          this.stats.notLeader++;
          lastError = `NOT_LEADER from osd.${route.osd} (hint ${reply.leaderHint ?? 'none'})`;
          if (reply.leaderHint !== undefined && reply.leaderHint !== route.osd) {
            this.router.leaderIs(request.pool, pg, reply.leaderHint);
          } else {
            // An election is under way or this replica lags: give it a moment, then try the next one.
            this.router.skip(request.pool, pg, route.osd);
            await pause();
          }
          if (reply.epoch > route.epoch) await this.refreshMap(reply.epoch, deadline);
          continue;
        case DataStatus.STALE_EPOCH:
          this.stats.staleEpoch++;
          lastError = `STALE_EPOCH from osd.${route.osd} (server epoch ${reply.epoch}, ours ${route.epoch})`;
          await this.refreshMap(Math.max(reply.epoch, route.epoch + 1), deadline);
          if (reply.epoch <= route.epoch) await pause();
          continue;
        case DataStatus.TIMEOUT:
          this.stats.timeouts++;
          lastError = `TIMEOUT from osd.${route.osd}: ${reply.message}`;
          await pause();
          continue;
        case DataStatus.NO_SPACE:
          throw new FastblockError(ErrorCode.NO_SPACE, `osd.${route.osd}: ${reply.message}`, { object: object.name, osd: route.osd });
        case DataStatus.INVALID_ARGUMENT:
          throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `osd.${route.osd}: ${reply.message}`, { object: object.name, osd: route.osd });
        default:
          throw new FastblockError(ErrorCode.IO_ERROR, `osd.${route.osd}: ${reply.message || `status ${reply.status}`}`, { object: object.name, osd: route.osd, attempt });
      }
    }
    throw new FastblockError(ErrorCode.TIMEOUT, `I/O on ${object.name} did not complete in ${this.policy.opTimeoutMs} ms`, {
      object: object.name,
      offset: request.offset,
      length: request.length,
      lastError,
    });
  }

  private connectionTo(endpoint: RemoteEndpoint): TransportConnection {
    let connection = this.connections.get(endpoint);
    if (connection === undefined || connection.state === 'closed') {
      connection = this.transport.connect(endpoint);
      this.connections.set(endpoint, connection);
    }
    return connection;
  }

  /** How long this attempt may take: the full attempt time, unless the connection or the deadline say less. */
  private attemptOptions(connection: TransportConnection, deadline: number): RequestOptions {
    // A connection that is not up yet may be to a dead OSD (the request would wait out the whole
    // attempt for a reconnect): give it a short time before trying another replica.
    const attemptMs = connection.state === 'connected' ? this.policy.attemptTimeoutMs : Math.min(this.policy.attemptTimeoutMs, 1000);
    const left = deadline - Date.now();
    if (attemptMs === this.policy.attemptTimeoutMs && left >= attemptMs) return this.fullAttempt;
    return { timeoutMs: Math.max(1, Math.min(attemptMs, left)) };
  }

  private async refreshMap(minEpoch: number | undefined, deadline: number): Promise<void> {
    if (Date.now() >= deadline) return;
    try {
      this.router.setMap(await this.maps.refresh(minEpoch));
    } catch (err) {
      // No newer map yet: keep routing with the one we have; the retry loop's time bound still holds.
      if (!isFastblockError(err, ErrorCode.TIMEOUT)) throw err;
    }
  }
}
