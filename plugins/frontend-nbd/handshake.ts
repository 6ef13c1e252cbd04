/**
 * Fixed newstyle negotiation: the greeting, the client's flags, then option haggling until the
 * client picks an export (NBD_OPT_GO or NBD_OPT_EXPORT_NAME) or leaves (NBD_OPT_ABORT).
 *
 * A malformed option that still has a well-formed header gets an error reply and haggling goes on,
 * as the protocol asks; anything that loses the framing (bad magic, unknown client flags, an option
 * longer than any legal one) throws a PROTOCOL error and the connection is closed by its owner.
 */
import type { Socket } from 'node:net';
import { ErrorCode, FastblockError, isFastblockError } from '../../kernel/errors.js';
import type { ExportTable, OpenExport } from './export-table.js';
import type { InputQueue } from './input-queue.js';
import {
  BASE_ALLOCATION,
  BASE_ALLOCATION_ID,
  EXPORT_NAME_PADDING,
  FLAG_C_FIXED_NEWSTYLE,
  FLAG_C_NO_ZEROES,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  GREETING_SIZE,
  IHAVEOPT,
  INIT_PASSWD,
  Info,
  KNOWN_CLIENT_FLAGS,
  MAX_STRING,
  OPTION_HEADER_SIZE,
  OPTION_REPLY_MAGIC,
  Option,
  Reply,
  TFLAG_CAN_MULTI_CONN,
  TFLAG_HAS_FLAGS,
  TFLAG_READ_ONLY,
  TFLAG_SEND_DF,
  TFLAG_SEND_FAST_ZERO,
  TFLAG_SEND_FLUSH,
  TFLAG_SEND_FUA,
  TFLAG_SEND_TRIM,
  TFLAG_SEND_WRITE_ZEROES,
} from './protocol.js';

/** No legal option carries more: a name and up to a few queries of MAX_STRING each. */
const MAX_OPTION_LENGTH = 64 * 1024;

export interface BlockSizes {
  readonly minimum: number;
  readonly preferred: number;
  readonly maximum: number;
}

export interface Negotiated {
  readonly export: OpenExport;
  /** Structured replies agreed (NBD_OPT_STRUCTURED_REPLY). */
  readonly structured: boolean;
  /** base:allocation selected: NBD_CMD_BLOCK_STATUS is allowed. */
  readonly blockStatus: boolean;
  readonly flags: number;
}

export interface HandshakeContext {
  readonly socket: Socket;
  readonly input: InputQueue;
  readonly exports: ExportTable;
  readonly blockSizes: BlockSizes;
  /** Name used when the client asks for the default ("") export, if any. */
  readonly defaultExport: string | undefined;
  /** True once the server is stopping: options get NBD_REP_ERR_SHUTDOWN. */
  readonly stopping: () => boolean;
}

function violation(message: string, context: Record<string, unknown> = {}): FastblockError {
  return new FastblockError(ErrorCode.PROTOCOL, message, context);
}

/** Transmission flags of an export as this connection will see it. */
export function transmissionFlags(options: { readOnly: boolean }, structured: boolean): number {
  let flags = TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_SEND_FUA | TFLAG_CAN_MULTI_CONN;
  flags |= options.readOnly ? TFLAG_READ_ONLY : TFLAG_SEND_TRIM | TFLAG_SEND_WRITE_ZEROES | TFLAG_SEND_FAST_ZERO;
  if (structured) flags |= TFLAG_SEND_DF;
  return flags;
}

/**
 * Runs the negotiation. Resolves with the chosen export (acquired from the table: the caller
 * releases it) or null when the client aborted.
 */
export async function negotiate(ctx: HandshakeContext): Promise<Negotiated | null> {
  const greeting = Buffer.alloc(GREETING_SIZE);
  greeting.writeBigUInt64BE(INIT_PASSWD, 0);
  greeting.writeBigUInt64BE(IHAVEOPT, 8);
  greeting.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
  ctx.socket.write(greeting);

  await ctx.input.need(4);
  const clientFlags = ctx.input.read(4).readUInt32BE(0);
  if ((clientFlags & ~KNOWN_CLIENT_FLAGS) !== 0) {
    throw violation('unknown client flags', { clientFlags: `0x${clientFlags.toString(16)}` });
  }
  const fixed = (clientFlags & FLAG_C_FIXED_NEWSTYLE) !== 0;
  const noZeroes = (clientFlags & FLAG_C_NO_ZEROES) !== 0;
  return new Haggling(ctx, fixed, noZeroes).run();
}

class Haggling {
  private structured = false;
  /** The export base:allocation was selected for (the selection is per export). */
  private metaContextExport: string | undefined;

  constructor(
    private readonly ctx: HandshakeContext,
    private readonly fixed: boolean,
    private readonly noZeroes: boolean,
  ) {}

  async run(): Promise<Negotiated | null> {
    for (;;) {
      await this.ctx.input.need(OPTION_HEADER_SIZE);
      const header = this.ctx.input.read(OPTION_HEADER_SIZE);
      const magic = header.readBigUInt64BE(0);
      const option = header.readUInt32BE(8);
      const length = header.readUInt32BE(12);
      if (magic !== IHAVEOPT) throw violation('bad option magic', { magic: `0x${magic.toString(16)}` });
      if (length > MAX_OPTION_LENGTH) throw violation('option data too long', { option, length, max: MAX_OPTION_LENGTH });
      await this.ctx.input.need(length);
      const data = this.ctx.input.read(length);

      if (option === Option.EXPORT_NAME) return this.exportName(data);
      if (!this.fixed) throw violation('option other than EXPORT_NAME from a client without fixed newstyle', { option });
      if (option === Option.ABORT) {
        this.reply(option, Reply.ACK);
        return null;
      }
      if (this.ctx.stopping()) {
        this.error(option, Reply.ERR_SHUTDOWN, 'server is shutting down');
        continue;
      }
      switch (option) {
        case Option.LIST:
          await this.list(data);
          break;
        case Option.INFO:
        case Option.GO: {
          const chosen = await this.infoOrGo(option, data);
          if (chosen) return chosen;
          break;
        }
        case Option.STRUCTURED_REPLY:
          this.structuredReply(data);
          break;
        case Option.LIST_META_CONTEXT:
        case Option.SET_META_CONTEXT:
          await this.metaContext(option, data);
          break;
        default:
          // STARTTLS included: this server has no TLS, which the protocol says to answer this way.
          this.error(option, Reply.ERR_UNSUP, `option ${option} is not supported`);
      }
    }
  }

  private async exportName(data: Buffer): Promise<Negotiated> {
    if (data.length > MAX_STRING) throw violation('NBD_OPT_EXPORT_NAME with an over-long name', { length: data.length });
    const name = this.resolveName(data.toString('utf8'));
    let chosen: OpenExport;
    try {
      chosen = await this.ctx.exports.acquire(name);
    } catch (err) {
      // This option has no error reply: the protocol's only answer is to hang up.
      throw violation(`NBD_OPT_EXPORT_NAME for an export that cannot be opened: ${name}`, { name, cause: describe(err) });
    }
    const flags = transmissionFlags(chosen.options, this.structured);
    const reply = Buffer.alloc(10 + (this.noZeroes ? 0 : EXPORT_NAME_PADDING));
    reply.writeBigUInt64BE(BigInt(chosen.volume.size), 0);
    reply.writeUInt16BE(flags, 8);
    this.ctx.socket.write(reply);
    return this.chosen(chosen, flags);
  }

  private async list(data: Buffer): Promise<void> {
    if (data.length !== 0) return this.error(Option.LIST, Reply.ERR_INVALID, 'NBD_OPT_LIST carries no data');
    const names = await this.exportNames(Option.LIST);
    if (!names) return;
    for (const name of names) {
      const encoded = Buffer.from(name, 'utf8');
      const payload = Buffer.alloc(4 + encoded.length);
      payload.writeUInt32BE(encoded.length, 0);
      encoded.copy(payload, 4);
      this.reply(Option.LIST, Reply.SERVER, payload);
    }
    this.reply(Option.LIST, Reply.ACK);
  }

  private async infoOrGo(option: number, data: Buffer): Promise<Negotiated | null> {
    // name length (4), name, request count (2), requests (2 each)
    if (data.length < 6) return this.invalid(option, 'info request too short');
    const nameLength = data.readUInt32BE(0);
    if (nameLength > MAX_STRING || 4 + nameLength + 2 > data.length) return this.invalid(option, 'bad export name length');
    const requested = data.readUInt16BE(4 + nameLength);
    if (data.length !== 4 + nameLength + 2 + 2 * requested) return this.invalid(option, 'info request count does not match option length');
    const infos = new Set<number>();
    for (let i = 0; i < requested; i++) infos.add(data.readUInt16BE(4 + nameLength + 2 + 2 * i));
    const name = this.resolveName(data.toString('utf8', 4, 4 + nameLength));

    let chosen: OpenExport;
    try {
      chosen = await this.ctx.exports.acquire(name);
    } catch (err) {
      // ERR_INVALID would blame the request's syntax; a provider that is closing says so, and any
      // other failure to open is reported as an unusable export, with the provider's reason.
      const closing = isFastblockError(err, ErrorCode.CLOSED);
      this.error(option, closing ? Reply.ERR_SHUTDOWN : Reply.ERR_UNKNOWN, `cannot open export ${name}: ${describe(err)}`);
      return null;
    }
    const going = option === Option.GO;
    try {
      const flags = transmissionFlags(chosen.options, this.structured);
      const exportInfo = Buffer.alloc(12);
      exportInfo.writeUInt16BE(Info.EXPORT, 0);
      exportInfo.writeBigUInt64BE(BigInt(chosen.volume.size), 2);
      exportInfo.writeUInt16BE(flags, 10);
      this.reply(option, Reply.INFO, exportInfo);
      if (infos.has(Info.NAME)) {
        this.reply(option, Reply.INFO, Buffer.concat([u16(Info.NAME), Buffer.from(chosen.name, 'utf8')]));
      }
      if (infos.has(Info.DESCRIPTION)) {
        this.reply(option, Reply.INFO, Buffer.concat([u16(Info.DESCRIPTION), Buffer.from(`fastblock volume ${chosen.name}`, 'utf8')]));
      }
      // Sent whether asked or not (the protocol allows it): clients that honour it split large I/O.
      const sizes = Buffer.alloc(14);
      sizes.writeUInt16BE(Info.BLOCK_SIZE, 0);
      sizes.writeUInt32BE(this.ctx.blockSizes.minimum, 2);
      sizes.writeUInt32BE(Math.max(this.ctx.blockSizes.preferred, chosen.volume.blockSize), 6);
      sizes.writeUInt32BE(this.ctx.blockSizes.maximum, 10);
      this.reply(option, Reply.INFO, sizes);
      this.reply(option, Reply.ACK);
      return going ? this.chosen(chosen, flags) : null;
    } finally {
      if (!going) await this.ctx.exports.release(chosen.name);
    }
  }

  private structuredReply(data: Buffer): void {
    if (data.length !== 0) return this.error(Option.STRUCTURED_REPLY, Reply.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY carries no data');
    if (this.structured) return this.error(Option.STRUCTURED_REPLY, Reply.ERR_INVALID, 'structured replies already negotiated');
    this.structured = true;
    this.reply(Option.STRUCTURED_REPLY, Reply.ACK);
  }

  private async metaContext(option: number, data: Buffer): Promise<void> {
    if (!this.structured) return this.error(option, Reply.ERR_INVALID, 'metadata contexts need structured replies first');
    // name length (4), name, query count (4), then per query: length (4), query
    if (data.length < 8) return this.error(option, Reply.ERR_INVALID, 'meta context request too short');
    const nameLength = data.readUInt32BE(0);
    if (nameLength > MAX_STRING || 4 + nameLength + 4 > data.length) return this.error(option, Reply.ERR_INVALID, 'bad export name length');
    const name = this.resolveName(data.toString('utf8', 4, 4 + nameLength));
    let at = 4 + nameLength;
    const count = data.readUInt32BE(at);
    at += 4;
    const queries: string[] = [];
    for (let i = 0; i < count; i++) {
      if (at + 4 > data.length) return this.error(option, Reply.ERR_INVALID, 'meta context query count does not match option length');
      const length = data.readUInt32BE(at);
      at += 4;
      if (length > MAX_STRING || at + length > data.length) return this.error(option, Reply.ERR_INVALID, 'bad meta context query length');
      queries.push(data.toString('utf8', at, at + length));
      at += length;
    }
    if (at !== data.length) return this.error(option, Reply.ERR_INVALID, 'trailing bytes after meta context queries');

    const names = await this.exportNames(option);
    if (!names) return;
    if (!names.includes(name)) return this.error(option, Reply.ERR_UNKNOWN, `no export named ${name}`);

    const listing = option === Option.LIST_META_CONTEXT;
    const selected = queries.some((q) => q === BASE_ALLOCATION || (listing && q === 'base:')) || (listing && count === 0);
    if (!listing) this.metaContextExport = selected ? name : undefined;
    if (selected) {
      const encoded = Buffer.from(BASE_ALLOCATION, 'utf8');
      const payload = Buffer.alloc(4 + encoded.length);
      payload.writeUInt32BE(listing ? 0 : BASE_ALLOCATION_ID, 0);
      encoded.copy(payload, 4);
      this.reply(option, Reply.META_CONTEXT, payload);
    }
    this.reply(option, Reply.ACK);
  }

  private chosen(chosen: OpenExport, flags: number): Negotiated {
    return { export: chosen, structured: this.structured, blockStatus: this.structured && this.metaContextExport === chosen.name, flags };
  }

  /** The export names, or undefined after replying with an error when the provider cannot list. */
  private async exportNames(option: number): Promise<string[] | undefined> {
    try {
      return await this.ctx.exports.names();
    } catch (err) {
      // A provider not (or no longer) connected to its cluster: this option fails, haggling goes on.
      const closing = isFastblockError(err, ErrorCode.CLOSED);
      this.error(option, closing ? Reply.ERR_SHUTDOWN : Reply.ERR_POLICY, `cannot list exports: ${describe(err)}`);
      return undefined;
    }
  }

  private resolveName(name: string): string {
    return name === '' && this.ctx.defaultExport !== undefined ? this.ctx.defaultExport : name;
  }

  private invalid(option: number, message: string): null {
    this.error(option, Reply.ERR_INVALID, message);
    return null;
  }

  private error(option: number, type: number, message: string): void {
    this.reply(option, type, Buffer.from(message.slice(0, 512), 'utf8'));
  }

  private reply(option: number, type: number, payload: Buffer = Buffer.alloc(0)): void {
    const header = Buffer.alloc(20);
    header.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(type, 12);
    header.writeUInt32BE(payload.length, 16);
    this.ctx.socket.write(payload.length ? Buffer.concat([header, payload]) : header);
  }
}

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value, 0);
  return b;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
