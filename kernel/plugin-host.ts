/**
 * What `fastblockd` is once its arguments are parsed: load the plugins, build the config from
 * their sections, register and start them in dependency order, then serve the control RPC on
 * daemon.listen over whichever Transport a plugin provided. stop() undoes it in reverse.
 *
 * Two phases so that `--print-config` can show the effective config without starting anything:
 *   const prepared = await prepareHost(options);   // load + validate; no side effects
 *   const host = await startHost(prepared);        // register, start, listen
 */
import type { Logger } from 'pino';
import { formatAddress, parseAddress } from './address.js';
import { TOKENS, createContainer, type DependencyContainer } from './container.js';
import { loadConfig, type EffectiveConfig } from './config.js';
import type { MetricsRegistry } from './contracts/metrics.js';
import type { Transport, TransportListener } from './contracts/transport.js';
import { createLogger } from './logger.js';
import { orderPlugins } from './plugin-graph.js';
import { PluginLifecycle } from './plugin-lifecycle.js';
import { loadPlugins, type LoadedPlugin } from './plugin-loader.js';
import { startMetricsServer, type MetricsServer } from './metrics/metrics-server.js';
import { addProcessMetrics, createMetricsRegistry } from './metrics/registry.js';
import { AdminCommands } from './rpc/admin-commands.js';
import { serveControl, type StatusReply } from './rpc/control.js';
import { RpcServer } from './rpc/rpc-server.js';
import { KERNEL_VERSION } from './version.js';

export interface HostOptions {
  /** As given to --plugins: built-in short names, npm package names, paths. */
  readonly plugins: readonly string[];
  readonly configFile?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Dotted key -> value from the command line (highest precedence). */
  readonly overrides?: Readonly<Record<string, string | number | boolean>>;
  /** Folders npm plugin packages are resolved from (default: the working directory). */
  readonly searchFrom?: readonly string[];
  /** Log destination: a file descriptor or a stream (default: stdout). */
  readonly logDestination?: number | NodeJS.WritableStream;
}

export interface PreparedHost {
  readonly plugins: readonly LoadedPlugin[];
  readonly config: EffectiveConfig;
  readonly options: HostOptions;
}

export async function prepareHost(options: HostOptions): Promise<PreparedHost> {
  const plugins = orderPlugins(await loadPlugins(options.plugins, { searchFrom: options.searchFrom }));
  const config = loadConfig({
    file: options.configFile,
    env: options.env,
    overrides: options.overrides,
    plugins: plugins.map((p) => p.manifest),
  });
  return { plugins, config, options };
}

export class PluginHost {
  private listener: TransportListener | undefined;
  private metricsServer: MetricsServer | undefined;
  private readonly startedAt = Date.now();
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly container: DependencyContainer,
    readonly logger: Logger,
    readonly prepared: PreparedHost,
    private readonly lifecycle: PluginLifecycle,
    readonly rpc: RpcServer,
    readonly admin: AdminCommands,
  ) {}

  /** The bound control address (the real port when 0 was asked), if the daemon listens. */
  get controlAddress(): string | undefined {
    return this.listener ? formatAddress(this.listener.address) : undefined;
  }

  /** Where /metrics is served (the real port when 0 was asked), if metrics.listen is set. */
  get metricsUrl(): string | undefined {
    return this.metricsServer?.url;
  }

  static async start(prepared: PreparedHost): Promise<PluginHost> {
    const values = prepared.config.values;
    const logger = createLogger({ level: values.log.level, name: values.daemon.name, destination: prepared.options.logDestination });
    for (const section of prepared.config.ignoredSections) {
      logger.warn({ section }, 'config section for a plugin that is not loaded; ignored');
    }
    const container = createContainer();
    const rpc = new RpcServer();
    const admin = new AdminCommands();
    container.registerInstance(TOKENS.Config, values);
    container.registerInstance(TOKENS.Logger, logger);
    container.registerInstance(TOKENS.RpcServer, rpc);
    container.registerInstance(TOKENS.AdminCommands, admin);
    container.registerInstance(TOKENS.Metrics, createMetricsRegistry());

    const lifecycle = new PluginLifecycle(container, prepared.plugins, {
      logger,
      startTimeoutMs: values.daemon.startTimeoutMs,
      stopTimeoutMs: values.daemon.stopTimeoutMs,
    });
    const host = new PluginHost(container, logger, prepared, lifecycle, rpc, admin);
    serveControl(rpc, () => host.status(), admin);
    await lifecycle.register(values);
    await lifecycle.start();
    try {
      await host.listen();
      await host.serveMetrics();
    } catch (err) {
      await host.listener?.close();
      await lifecycle.stop();
      throw err;
    }
    logger.info({ plugins: lifecycle.running, listen: host.controlAddress ?? null, metrics: host.metricsUrl ?? null, version: KERNEL_VERSION }, 'fastblockd ready');
    return host;
  }

  status(): StatusReply {
    return {
      daemon: this.prepared.config.values.daemon.name,
      version: KERNEL_VERSION,
      pid: process.pid,
      uptimeMs: Date.now() - this.startedAt,
      listen: this.controlAddress ?? '',
      plugins: this.prepared.plugins.map(({ manifest, origin }) => ({
        name: manifest.name,
        kind: manifest.kind,
        version: manifest.version,
        origin,
        description: manifest.description ?? '',
      })),
      commands: this.admin.list(),
      methods: this.rpc.methods(),
      nodeVersion: process.version,
      metrics: this.metricsUrl ?? '',
    };
  }

  /** Stops the control listener, then every plugin in reverse start order. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info('stopping');
      await this.listener?.close();
      await this.metricsServer?.close();
      await this.lifecycle.stop();
      this.logger.info('stopped');
    })();
    return this.stopping;
  }

  private async serveMetrics(): Promise<void> {
    const listen = this.prepared.config.values.metrics.listen;
    if (listen === '') return;
    const registry = this.container.resolve<MetricsRegistry>(TOKENS.Metrics);
    addProcessMetrics(registry, { name: this.prepared.config.values.daemon.name, version: KERNEL_VERSION, plugins: this.prepared.plugins.map((p) => p.manifest.name) });
    this.metricsServer = await startMetricsServer(registry, parseAddress(listen, 'metrics.listen'), this.logger);
    this.logger.info({ url: this.metricsServer.url }, 'metrics served');
  }

  private async listen(): Promise<void> {
    const listen = this.prepared.config.values.daemon.listen;
    if (listen === '') return;
    if (!this.container.isRegistered(TOKENS.Transport, true)) {
      this.logger.warn({ listen }, 'no transport plugin loaded (add tcp to --plugins); the control RPC is not served');
      return;
    }
    const transport = this.container.resolve<Transport>(TOKENS.Transport);
    this.listener = await transport.listen(parseAddress(listen, 'daemon.listen'), this.rpc);
    this.logger.info({ listen: this.controlAddress }, 'control RPC listening');
  }
}
