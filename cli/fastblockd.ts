/**
 * fastblockd: the daemon. It becomes what its plugins make it (DESIGN.md):
 *   fastblockd --plugins tcp,monitor
 *   fastblockd --plugins tcp,blobstore --config /etc/fastblock.json
 * Logs are pino JSON lines on stdout. A failure to start prints one line on stderr and exits 1;
 * SIGINT/SIGTERM stop the plugins in reverse order and exit 0.
 */
import { Command, InvalidArgumentError } from 'commander';
import { isFastblockError } from '../kernel/errors.js';
import { BUILTIN_PLUGINS } from '../kernel/plugin.js';
import { PluginHost, prepareHost } from '../kernel/plugin-host.js';
import { KERNEL_VERSION } from '../kernel/version.js';

function keyValue(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = text.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`expected KEY=VALUE (e.g. tcp.requestTimeoutMs=5000), got '${text}'`);
  return { ...previous, [text.slice(0, at)]: text.slice(at + 1) };
}

function pluginList(text: string): string[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new InvalidArgumentError('expected a comma-separated list of plugins, e.g. tcp,blobstore');
  return names;
}

function shardCount(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1 || value > 256) throw new InvalidArgumentError(`expected a whole number of shards from 1 to 256, got '${text}'`);
  return value;
}

const builtins = BUILTIN_PLUGINS.map((b) => `  ${b.name.padEnd(10)} ${b.summary}`).join('\n');

const program = new Command('fastblockd')
  .description('fastblock daemon: a monitor, a storage node or a gateway, depending on its plugins')
  .version(KERNEL_VERSION)
  .requiredOption('-p, --plugins <list>', 'plugins to load: built-in names, npm package names or paths, comma-separated', pluginList)
  .option('-c, --config <file>', 'JSON config file (one file serves every role)')
  .option('-s, --set <key=value>', 'set a config key, over file and environment (repeatable)', keyValue)
  .option('--listen <host:port>', 'control RPC address (daemon.listen)')
  .option('--name <name>', 'daemon name in logs and status (daemon.name)')
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (log.level)')
  .option('--shards <n>', 'OSD shards, one worker thread each (osd.shards; needs the osd plugin)', shardCount)
  .option('--print-config', 'print the effective configuration as JSON and exit')
  .addHelpText(
    'after',
    `
Built-in plugins:
${builtins}

Any other name is an npm package (resolved from the working directory) or a path.
Config precedence: defaults < --config file < FASTBLOCK_* environment < --set and flags.
Environment names derive from keys: tcp.requestTimeoutMs is FASTBLOCK_TCP_REQUEST_TIMEOUT_MS.`,
  );

interface Flags {
  plugins: string[];
  config?: string;
  set?: Record<string, string>;
  listen?: string;
  name?: string;
  logLevel?: string;
  shards?: number;
  printConfig?: boolean;
}

function fail(err: unknown): never {
  const message = isFastblockError(err) || err instanceof Error ? err.message : String(err);
  process.stderr.write(`fastblockd: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  program.parse();
  const flags = program.opts<Flags>();
  const overrides: Record<string, string> = { ...flags.set };
  if (flags.listen !== undefined) overrides['daemon.listen'] = flags.listen;
  if (flags.name !== undefined) overrides['daemon.name'] = flags.name;
  if (flags.logLevel !== undefined) overrides['log.level'] = flags.logLevel;
  if (flags.shards !== undefined) {
    if (!flags.plugins.includes('osd')) fail(new Error('--shards sets osd.shards: load the osd plugin (--plugins tcp,blobstore,osd)'));
    overrides['osd.shards'] = String(flags.shards);
  }

  const prepared = await prepareHost({ plugins: flags.plugins, configFile: flags.config, overrides });
  if (flags.printConfig) {
    process.stdout.write(prepared.config.print() + '\n');
    return;
  }

  // The handlers go in before the plugins start: a signal that arrives while they start (or
  // right after "fastblockd ready" was logged) still stops them cleanly instead of killing the
  // process with the signal's default action.
  let host: PluginHost | undefined;
  let pending: NodeJS.Signals | undefined;
  let signals = 0;
  const stop = (running: PluginHost, signal: NodeJS.Signals): void => {
    running.logger.info({ signal }, 'signal received');
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        running.logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  const shutdown = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      host?.logger.error({ signal }, 'second signal while stopping; exiting now');
      process.exit(1);
    }
    if (host === undefined) pending = signal;
    else stop(host, signal);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  host = await PluginHost.start(prepared);
  if (pending !== undefined) stop(host, pending);
  const started = host;
  // A bug that escapes a plugin leaves the daemon in an unknown state: log it, stop what can be
  // stopped, and exit non-zero so a supervisor restarts it.
  const crash = (err: unknown, origin: string): void => {
    started.logger.fatal({ err, origin }, 'unhandled error; stopping');
    const deadline = setTimeout(() => process.exit(1), started.prepared.config.values.daemon.stopTimeoutMs);
    deadline.unref();
    started.stop().finally(() => process.exit(1));
  };
  process.on('uncaughtException', (err) => crash(err, 'uncaughtException'));
  process.on('unhandledRejection', (reason) => crash(reason, 'unhandledRejection'));
}

main().catch(fail);
