/**
 * The listening socket and the set of live connections. Each connection is independent: whatever
 * one client sends can close that connection only.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { ErrorCode, FastblockError, assert } from '../../kernel/errors.js';
import { Connection, type ConnectionSettings } from './connection.js';
import type { ExportTable } from './export-table.js';

export interface ServerSettings extends ConnectionSettings {
  readonly host: string;
  readonly port: number;
  readonly maxConnections: number;
}

export class NbdServer {
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private nextId = 1;
  private listening = false;

  constructor(
    private readonly exports: ExportTable,
    private readonly settings: ServerSettings,
    private readonly log: Logger,
  ) {
    // Paused on connect: each connection moves its socket to one that reads with onread (connection.ts).
    this.server = createServer({ noDelay: true, pauseOnConnect: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => this.log.error({ err }, 'listener error'));
  }

  async listen(): Promise<AddressInfo> {
    assert(!this.listening, 'listen() called twice');
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error): void =>
        reject(new FastblockError(ErrorCode.CONFIG_INVALID, `cannot listen on ${this.settings.host}:${this.settings.port}: ${err.message}`, { host: this.settings.host, port: this.settings.port }, { cause: err }));
      this.server.once('error', failed);
      this.server.listen(this.settings.port, this.settings.host, () => {
        this.server.off('error', failed);
        resolve();
      });
    });
    this.listening = true;
    const address = this.address();
    this.log.info({ host: address.address, port: address.port }, 'NBD server listening');
    return address;
  }

  address(): AddressInfo {
    const address = this.server.address();
    assert(address !== null && typeof address === 'object', 'server is not listening');
    return address;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stops accepting, lets every connection finish its in-flight requests, then returns. */
  async stop(): Promise<void> {
    const closed = this.listening ? new Promise<void>((resolve) => this.server.close(() => resolve())) : Promise.resolve();
    this.listening = false;
    const live = [...this.connections];
    for (const connection of live) connection.stop();
    await Promise.allSettled(live.map((c) => c.done));
    await closed;
  }

  private accept(socket: Socket): void {
    const id = this.nextId++;
    const log = this.log.child({ conn: id, remote: `${socket.remoteAddress}:${socket.remotePort}` });
    if (!this.listening || this.connections.size >= this.settings.maxConnections) {
      log.warn({ reason: this.listening ? `connection limit ${this.settings.maxConnections} reached` : 'server stopping' }, 'connection refused');
      socket.destroy();
      return;
    }
    const connection = new Connection(socket, this.exports, this.settings, log);
    this.connections.add(connection);
    connection.done
      .catch((err: unknown) => log.error({ err }, 'connection teardown failed'))
      .finally(() => this.connections.delete(connection));
  }
}
