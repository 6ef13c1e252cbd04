/**
 * `fastblock policy set|ls|get|rollback`. set and rollback show a dry run (PGs that would move,
 * balance before and after) and change nothing unless given --yes.
 */
import type { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { action, commandGroup, parseInteger, print, table, withCommonOptions, withMonitors, type CommonOptions } from './monitor-admin.js';

const KINDS = ['placement', 'leader'];

interface SwitchReport {
  dryRun: boolean;
  kind: string;
  name: string;
  version: number;
  pgsMoved: number;
  epoch?: number;
  pools: { pool: string; pgNum: number; pgsMoved: number; before: { maxOverMean: number }; after: { maxOverMean: number } }[];
}

function kindArg(kind: string): string {
  if (!KINDS.includes(kind)) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `policy kind '${kind}' is not one of ${KINDS.join(', ')}`, { kind });
  return kind;
}

function describe(r: SwitchReport): string {
  const lines = [
    `${r.dryRun ? 'dry run' : 'activated'}: ${r.kind} policy '${r.name}' version ${r.version}${r.epoch ? ` (epoch ${r.epoch})` : ''}`,
    `PGs that ${r.dryRun ? 'would move' : 'move'}: ${r.pgsMoved}`,
  ];
  if (r.pools.length) {
    lines.push(table([['POOL', 'PGS', 'MOVED', 'MAX/MEAN BEFORE', 'MAX/MEAN AFTER'], ...r.pools.map((p) => [p.pool, p.pgNum, p.pgsMoved, p.before.maxOverMean, p.after.maxOverMean])]));
  }
  if (r.dryRun) lines.push('nothing changed; add --yes to activate it');
  return lines.join('\n');
}

export function registerPolicy(program: Command): void {
  const policy = commandGroup(program, 'policy', 'placement and leader policies (WebAssembly)');
  withCommonOptions(policy.command('set <kind> <file>').description('dry-run a policy .wasm, and activate it with --yes'))
    .option('--name <name>', 'policy name (default: the file name)')
    .option('--yes', 'activate it')
    .action(
      action(async (kind: string, file: string, o: CommonOptions & { name?: string; yes?: boolean }) => {
        kindArg(kind);
        let bytes: Buffer;
        try {
          bytes = readFileSync(file);
        } catch (err) {
          throw new FastblockError(ErrorCode.NOT_FOUND, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file });
        }
        const name = o.name ?? basename(file).replace(/\.wasm$/, '').replace(/[^A-Za-z0-9_.-]/g, '-');
        // The bytes go as RPC payload: a policy can be far bigger than an admin call may carry.
        const report = (await withMonitors(o, (m) => m.uploadPolicy(kind, name, bytes, o.yes === true))) as SwitchReport;
        print(o, report, describe);
      }),
    );
  withCommonOptions(policy.command('ls [kind]').description('stored versions and the ones in force')).action(
    action(async (kind: string | undefined, o: CommonOptions) => {
      const rows = (await withMonitors(o, (m) => m.admin('policy ls', kind === undefined ? {} : { kind: kindArg(kind) }))) as {
        kind: string;
        name: string;
        version: number;
        sha256: string;
        active: boolean;
        builtin: boolean;
      }[];
      print(o, rows, (list) =>
        table([['KIND', 'VERSION', 'NAME', 'SHA256', 'ACTIVE'], ...list.map((p) => [p.kind, p.version, p.builtin ? `${p.name} (built-in)` : p.name, p.sha256.slice(0, 16), p.active ? '*' : ''])]),
      );
    }),
  );
  withCommonOptions(policy.command('get <kind>').description('show a version (default: the one in force); --out saves its wasm'))
    .option('--version <n>', 'version number (0: built-in)')
    .option('--out <file>', 'write the wasm bytes here')
    .action(
      action(async (kind: string, o: CommonOptions & { version?: string; out?: string }) => {
        const version = o.version === undefined ? -1 : parseInteger(o.version, '--version');
        const { policy: meta, bytes } = await withMonitors(o, (m) => m.downloadPolicy(kindArg(kind), version));
        if (o.out) writeFileSync(o.out, bytes);
        const shown = { ...meta, bytes: bytes.length, ...(o.out ? { out: o.out } : {}) };
        print(o, shown, () => `${kind} policy '${meta.name}' version ${meta.version}, sha256 ${meta.sha256}, ${bytes.length} bytes${o.out ? `, saved to ${o.out}` : ''}`);
      }),
    );
  withCommonOptions(policy.command('rollback <kind>').description('dry-run going back to an earlier version, and do it with --yes'))
    .option('--to <version>', 'version to go back to (default: the one before; 0: built-in)')
    .option('--yes', 'activate it')
    .action(
      action(async (kind: string, o: CommonOptions & { to?: string; yes?: boolean }) => {
        const args = { kind: kindArg(kind), apply: o.yes === true, ...(o.to === undefined ? {} : { version: parseInteger(o.to, '--to') }) };
        const report = (await withMonitors(o, (m) => m.admin('policy rollback', args))) as SwitchReport;
        print(o, report, describe);
      }),
    );
}
