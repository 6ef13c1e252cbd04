/**
 * What the monitor's subcommands (pool, image, osd, pg, policy) share: sizes like 10G, running an
 * admin command on the leader monitor (following NOT_LEADER hints through every address given in
 * --addr), --yes for destructive commands, and exit codes: 2 for a usage error (a bad size, a
 * mistyped name, a missing --yes), 1 for everything else (through daemon-client's fail()).
 */
import { Command, Option } from 'commander';
import { ErrorCode, FastblockError, isFastblockError } from '../../kernel/errors.js';
import { silentLogger } from '../../kernel/logger.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { MonitorClient } from '../../services/monitor/client.js';
import type { ClusterStatus } from '../../services/monitor/status.js';
import { formatUsage } from './usage-format.js';
import { fail } from '../daemon-client.js';

export const USAGE_EXIT_CODE = 2;

export interface CommonOptions {
  readonly addr: string;
  readonly timeout: number;
  readonly json?: boolean;
}

const UNITS: Readonly<Record<string, number>> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/** "10G", "512M", "1.5T", "4096", "10GiB" -> bytes (binary units). */
export function parseSize(text: string, what = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?$/i.exec(text.trim());
  const bytes = m ? Math.round(Number(m[1]) * UNITS[m[2].toUpperCase()]) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${what} '${text}' is not a size (examples: 10G, 512M, 4096)`, { value: text });
  }
  return bytes;
}

export function formatSize(bytes: number): string {
  for (const unit of ['P', 'T', 'G', 'M', 'K']) if (bytes >= UNITS[unit] && bytes % UNITS[unit] === 0) return `${bytes / UNITS[unit]}${unit}`;
  return `${bytes}`;
}

export function parseInteger(text: string, what: string, min = 0): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${what} '${text}' is not an integer >= ${min}`, { value: text });
  }
  return n;
}

/** "pool/name" -> parts. */
export function imageSpec(text: string): { pool: string; name: string } {
  const parts = text.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `image '${text}' must be POOL/NAME`, { value: text });
  return { pool: parts[0], name: parts[1] };
}

export function requireYes(yes: boolean | undefined, what: string): void {
  if (!yes) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${what}; add --yes to do it`, { confirm: false });
}

const USAGE_CODES: readonly string[] = [ErrorCode.INVALID_ARGUMENT, ErrorCode.NOT_FOUND, ErrorCode.ALREADY_EXISTS];

/** Options every monitor command takes. */
export function withCommonOptions(command: Command): Command {
  return command
    .addOption(new Option('-a, --addr <host:port,...>', 'monitor control address(es), comma-separated').env('FASTBLOCK_ADDR').default('127.0.0.1:7700'))
    .addOption(
      new Option('--timeout <ms>', 'give up after this many milliseconds').default(10_000).argParser((text) => parseInteger(text, '--timeout', 1)),
    )
    .addOption(new Option('--json', 'print the result as one JSON object'));
}

/** A parent command ("pool") whose parse errors (unknown subcommand, bad option) exit 2. */
export function commandGroup(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : USAGE_EXIT_CODE));
}

/** Runs `work` with a MonitorClient; maps errors to exit codes. */
export async function withMonitors<T>(options: CommonOptions, work: (monitors: MonitorClient) => Promise<T>): Promise<T> {
  const transport = new TcpTransport({ source: 'fastblock-cli', requestTimeoutMs: options.timeout, connectTimeoutMs: options.timeout }, silentLogger());
  const monitors = new MonitorClient({ transport, monitors: options.addr.split(',').map((s) => s.trim()).filter(Boolean), name: 'fastblock-cli', requestTimeoutMs: options.timeout });
  try {
    return await work(monitors);
  } finally {
    monitors.close();
    await transport.close();
  }
}

/** The action wrapper: usage errors exit 2 with one line; the rest go to fail() (exit 1). */
export function action<A extends unknown[]>(run: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args);
    } catch (err) {
      const json = process.argv.includes('--json');
      if (isFastblockError(err) && USAGE_CODES.includes(err.code)) {
        if (json) process.stdout.write(JSON.stringify({ error: { code: err.code, message: err.message, context: err.context } }) + '\n');
        else process.stderr.write(`fastblock: ${err.message}\n`);
        process.exit(USAGE_EXIT_CODE);
      }
      fail(err, json);
    }
  };
}

export function print<T>(options: CommonOptions, value: T, human: (value: T) => string): void {
  process.stdout.write((options.json ? JSON.stringify(value) : human(value)) + '\n');
}

export function table(rows: readonly (readonly unknown[])[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  return rows.map((r) => r.map((cell, c) => String(cell).padEnd(widths[c])).join('  ').trimEnd()).join('\n');
}

/** The cluster part of `fastblock status`. */
export function formatClusterStatus(s: ClusterStatus): string {
  const states = Object.entries(s.pgs.states).map(([state, n]) => `${n} ${state}`).join(', ') || 'none';
  return [
    'cluster',
    `  health    ${s.health}${s.problems.length ? ` (${s.problems.join('; ')})` : ''}`,
    `  epoch     ${s.epoch}   monitor ${s.monitor}${s.leader ? ' (leader)' : ''}${s.flags.noout ? '   flags noout' : ''}`,
    `  osds      ${s.osds.total} total, ${s.osds.up} up, ${s.osds.in} in`,
    `  usage     ${s.usage.osdsReporting ? `${formatUsage(s.usage)} over ${s.usage.osdsReporting} OSD(s)` : 'not reported yet'}`,
    `  pools     ${s.pools}, images ${s.images}`,
    `  pgs       ${s.pgs.total}: ${states}${s.pgs.degraded ? `; ${s.pgs.degraded} degraded` : ''}${s.pgs.unavailable ? `; ${s.pgs.unavailable} below min_size` : ''}`,
    `  policies  ${s.policies.map((p) => `${p.kind} ${p.name} v${p.version}`).join(', ') || 'built-in'}`,
  ].join('\n');
}
