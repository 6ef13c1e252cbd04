/**
 * Recovery by snapshot: a replica whose log is behind the leader's trimmed point rebuilds the PG
 * from the leader's object store. The raft snapshot itself carries only its index and membership
 * (the object store is the state machine, always current at the applied index); the bytes are
 * pulled here, batch by batch, from ObjectStore.exportPg on the serving side into importPg here.
 *
 * The copy is fuzzy (the leader keeps applying while it streams), which is safe: the leader's
 * store only ever holds committed ops, and after the import the follower replays the log from the
 * snapshot index, where every op is an absolute byte-range write, so each range converges to the
 * last committed write of it.
 */
import type { Logger } from 'pino';
import type { ObjectChunk, ObjectStore } from '../../kernel/contracts/store.js';
import type { InboundMessage, OutboundReply, TransportConnection } from '../../kernel/contracts/transport.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { DATA_METHOD_RECOVERY, DataStatus, dataProto, toNumber } from '../../client/data-protocol.js';

const RequestType = dataProto.lookupType('fastblock.data.RecoveryRequest');
const ReplyType = dataProto.lookupType('fastblock.data.RecoveryReply');

const CHUNK_BYTES = 256 * 1024;
const DEFAULT_BATCH_BYTES = 4 * 1024 * 1024;
/** A session nobody asked for in this long is dropped (its puller died). */
const SESSION_IDLE_MS = 60_000;

interface Session {
  readonly iterator: AsyncIterator<ObjectChunk>;
  /** A chunk read but not yet sent (it did not fit the last batch). */
  carry?: ObjectChunk;
  timer: NodeJS.Timeout;
}

export class RecoveryServer {
  private readonly sessions = new Map<number, Session>();
  private nextSession = 1;

  constructor(
    private readonly objects: ObjectStore,
    private readonly hosts: (pg: string) => boolean,
    private readonly logger: Logger,
  ) {}

  async handle(message: InboundMessage): Promise<OutboundReply> {
    const request = RequestType.toObject(RequestType.decode(message.header), { defaults: true }) as { pg: string; session: unknown; maxBytes: number };
    const maxBytes = Math.max(CHUNK_BYTES, Math.min(request.maxBytes || DEFAULT_BATCH_BYTES, 16 * 1024 * 1024));
    let id = toNumber(request.session);
    let session = this.sessions.get(id);
    if (id === 0) {
      if (!this.hosts(request.pg)) return this.reply({ status: DataStatus.NOT_LEADER, session: 0, chunks: [], done: true, message: `PG ${request.pg} is not here` });
      id = this.nextSession++;
      const opened = id;
      session = { iterator: this.objects.exportPg(request.pg, CHUNK_BYTES)[Symbol.asyncIterator](), timer: setTimeout(() => this.drop(opened), SESSION_IDLE_MS) };
      this.sessions.set(id, session);
      this.logger.info({ pg: request.pg, session: id }, 'recovery export started');
    }
    if (!session) return this.reply({ status: DataStatus.INVALID_ARGUMENT, session: id, chunks: [], done: true, message: `no recovery session ${id}` });
    clearTimeout(session.timer);
    const chunks: ObjectChunk[] = [];
    let bytes = 0;
    let done = false;
    while (bytes < maxBytes) {
      const chunk = session.carry ?? (await session.iterator.next().then((r) => (r.done ? undefined : r.value)));
      session.carry = undefined;
      if (!chunk) {
        done = true;
        break;
      }
      if (bytes > 0 && bytes + chunk.data.length > maxBytes) {
        session.carry = chunk;
        break;
      }
      chunks.push(chunk);
      bytes += chunk.data.length;
    }
    if (done) this.sessions.delete(id);
    else session.timer = setTimeout(() => this.drop(id), SESSION_IDLE_MS);
    return this.reply(
      { status: DataStatus.OK, session: id, chunks: chunks.map((c) => ({ object: c.object, offset: c.offset, size: c.size, length: c.data.length })), done, message: '' },
      chunks.map((c) => c.data),
    );
  }

  private drop(id: number): void {
    const session = this.sessions.get(id);
    if (!session) return;
    this.sessions.delete(id);
    void session.iterator.return?.();
  }

  close(): void {
    for (const id of [...this.sessions.keys()]) this.drop(id);
  }

  private reply(fields: Record<string, unknown>, payload?: Uint8Array[]): OutboundReply {
    return { header: ReplyType.encode(fields).finish(), payload };
  }
}

/** Streams a PG's objects from a serving replica, batch by batch, as importPg consumes them. */
export async function* pullPg(connection: TransportConnection, pg: string, timeoutMs = 30_000): AsyncIterable<ObjectChunk> {
  let session = 0;
  for (;;) {
    const reply = await connection.request(DATA_METHOD_RECOVERY, RequestType.encode({ pg, session, maxBytes: DEFAULT_BATCH_BYTES }).finish(), undefined, { timeoutMs });
    const header = ReplyType.toObject(ReplyType.decode(reply.header), { defaults: true }) as {
      status: number;
      session: unknown;
      chunks: Array<{ object: string; offset: unknown; size: unknown; length: number }>;
      done: boolean;
      message: string;
    };
    if (header.status !== DataStatus.OK) {
      throw new FastblockError(ErrorCode.IO_ERROR, `recovery of PG ${pg} refused: ${header.message}`, { pg, status: header.status });
    }
    session = toNumber(header.session);
    let at = 0;
    for (const chunk of header.chunks) {
      if (at + chunk.length > reply.payload.length) throw new FastblockError(ErrorCode.PROTOCOL, 'recovery reply shorter than its chunk list', { pg });
      // Copied out of the receive buffer: importPg may hold chunks past this reply's lifetime.
      const data = reply.payload.slice(at, at + chunk.length);
      at += chunk.length;
      yield { object: chunk.object, offset: toNumber(chunk.offset), size: toNumber(chunk.size), data };
    }
    if (header.done) return;
  }
}
