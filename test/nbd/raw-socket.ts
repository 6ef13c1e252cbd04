/**
 * A bare TCP peer for fault injection: sends exactly the bytes a test chooses (garbage, a cut
 * handshake, a malformed request) and reads what comes back. It speaks just enough NBD to reach
 * the transmission phase; conformance is checked with real clients, not with this.
 */
import { connect, type Socket } from 'node:net';

export class RawSocket {
  private buffered = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  readonly closed: Promise<void>;
  private ended = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake?.();
    });
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.ended = true;
        this.wake?.();
        resolve();
      }),
    );
    socket.on('error', () => undefined);
  }

  static open(port: number): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(new RawSocket(socket)));
      socket.once('error', reject);
    });
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Exactly n bytes, or throws if the server closed first. */
  async read(n: number): Promise<Buffer> {
    while (this.buffered.length < n) {
      if (this.ended) throw new Error(`connection closed with ${this.buffered.length} of ${n} bytes`);
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** Half-close: the server sees EOF after what was written. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Server greeting + client flags (fixed newstyle, no zeroes). */
  async greet(): Promise<void> {
    const greeting = await this.read(18);
    if (greeting.toString('latin1', 0, 8) !== 'NBDMAGIC') throw new Error('no NBDMAGIC');
    this.write(u32(3));
  }

  /** Sends an option and returns its replies up to the final one (ACK or an error). */
  async option(option: number, data: Buffer = Buffer.alloc(0)): Promise<Array<{ type: number; data: Buffer }>> {
    const header = Buffer.alloc(16);
    header.write('IHAVEOPT', 0, 'latin1');
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(data.length, 12);
    this.write(Buffer.concat([header, data]));
    const replies = [];
    for (;;) {
      const reply = await this.read(20);
      const type = reply.readUInt32BE(12);
      const body = await this.read(reply.readUInt32BE(16));
      replies.push({ type, data: body });
      if (type === 1 || type >= 0x80000000) return replies;
    }
  }

  /** NBD_OPT_GO for `name` with no info requests; returns the export size. */
  async go(name: string): Promise<number> {
    const encoded = Buffer.from(name);
    const replies = await this.option(7, Buffer.concat([u32(encoded.length), encoded, Buffer.alloc(2)]));
    const last = replies[replies.length - 1]!;
    if (last.type !== 1) throw new Error(`GO refused: 0x${last.type.toString(16)} ${last.data.toString()}`);
    const exportInfo = replies.find((r) => r.type === 3 && r.data.readUInt16BE(0) === 0)!;
    return Number(exportInfo.data.readBigUInt64BE(2));
  }

  /** One request; for a WRITE pass the payload. */
  request(type: number, offset: number, length: number, options: { flags?: number; cookie?: number; payload?: Buffer; magic?: number } = {}): void {
    const header = Buffer.alloc(28);
    header.writeUInt32BE(options.magic ?? 0x25609513, 0);
    header.writeUInt16BE(options.flags ?? 0, 4);
    header.writeUInt16BE(type, 6);
    header.writeBigUInt64BE(BigInt(options.cookie ?? 1), 8);
    header.writeBigUInt64BE(BigInt(offset), 16);
    header.writeUInt32BE(length, 24);
    this.write(options.payload ? Buffer.concat([header, options.payload]) : header);
  }

  /** A simple reply: its error and cookie (and `dataLength` bytes of read data after it). */
  async simpleReply(dataLength = 0): Promise<{ error: number; cookie: number; data: Buffer }> {
    const reply = await this.read(16);
    if (reply.readUInt32BE(0) !== 0x67446698) throw new Error(`not a simple reply: ${reply.toString('hex')}`);
    const error = reply.readUInt32BE(4);
    const data = error === 0 && dataLength > 0 ? await this.read(dataLength) : Buffer.alloc(0);
    return { error, cookie: Number(reply.readBigUInt64BE(8)), data };
  }
}

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value, 0);
  return b;
}
