/**
 * What every `fastblock` subcommand shares: reach a daemon's control RPC, print a result as
 * JSON (--json) or as text, and turn failures into one line and a non-zero exit.
 */
import { Option } from 'commander';
import { parseAddress } from '../kernel/address.js';
import type { TransportConnection } from '../kernel/contracts/transport.js';
import { ErrorCode, FastblockError, isFastblockError } from '../kernel/errors.js';
import { silentLogger } from '../kernel/logger.js';
import { TcpTransport } from '../plugins/transport-tcp/tcp-transport.js';

/** `--addr HOST:PORT` (env FASTBLOCK_ADDR), the daemon's daemon.listen. */
export const addrOption = (): Option =>
  new Option('-a, --addr <host:port>', 'control address of the daemon (its daemon.listen)').env('FASTBLOCK_ADDR').default('127.0.0.1:7700');

export const jsonOption = (): Option => new Option('--json', 'print the result as one JSON object');

export const timeoutOption = (): Option =>
  new Option('--timeout <ms>', 'give up after this many milliseconds').default(10_000).argParser((text) => {
    const ms = Number(text);
    if (!Number.isInteger(ms) || ms <= 0) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `--timeout ${text} is not a positive integer`);
    return ms;
  });

/** Connects to the daemon at `addr`, runs `work`, and always closes the connection. */
export async function withDaemon<T>(addr: string, timeoutMs: number, work: (connection: TransportConnection) => Promise<T>): Promise<T> {
  const address = parseAddress(addr, '--addr');
  const transport = new TcpTransport({ source: 'fastblock-cli', requestTimeoutMs: timeoutMs, connectTimeoutMs: timeoutMs }, silentLogger());
  try {
    return await work(transport.connect({ address, shard: 0 }));
  } catch (err) {
    if (isFastblockError(err, ErrorCode.TIMEOUT) && err.context.sent === false) {
      throw new FastblockError(ErrorCode.TIMEOUT, `no daemon answering at ${addr} within ${timeoutMs} ms (is fastblockd running with --plugins tcp?)`, { addr });
    }
    throw err;
  } finally {
    await transport.close();
  }
}

/** Prints `value` as one JSON line with --json, else `human(value)`. */
export function output<T>(json: boolean | undefined, value: T, human: (value: T) => string): void {
  process.stdout.write(json ? JSON.stringify(value) + '\n' : human(value) + '\n');
}

/** One line on stderr (or a JSON error object on stdout with --json), exit 1. */
export function fail(err: unknown, json: boolean): never {
  const e = isFastblockError(err) ? err : new FastblockError(ErrorCode.INTERNAL, err instanceof Error ? err.message : String(err));
  if (json) process.stdout.write(JSON.stringify({ error: { code: e.code, message: e.message, context: e.context } }) + '\n');
  else process.stderr.write(`fastblock: ${e.message}\n`);
  process.exit(1);
}
