/**
 * Register, start and stop a daemon's plugins.
 *
 * Plugins are registered and started in dependency order (plugin-graph.ts). A start that throws
 * or overruns daemon.startTimeoutMs stops every plugin already started, in reverse order, and
 * fails with one line naming the plugin. stop() runs in reverse order; a plugin whose stop
 * throws or overruns is logged and the rest are still stopped.
 */
import type { Logger } from 'pino';
import { assert } from './errors.js';
import type { DependencyContainer } from './container.js';
import type { PluginInstance, PluginManifest } from './plugin.js';
import { PluginErrors } from './plugin-errors.js';
import type { LoadedPlugin } from './plugin-loader.js';
import { KERNEL_VERSION } from './version.js';

export interface LifecycleOptions {
  readonly logger: Logger;
  readonly startTimeoutMs: number;
  readonly stopTimeoutMs: number;
}

interface Registered {
  readonly manifest: PluginManifest;
  readonly instance: PluginInstance;
}

type Phase = 'new' | 'registered' | 'starting' | 'started' | 'stopping' | 'stopped';

const TIMED_OUT = Symbol('timed out');

async function within<T>(work: () => Promise<T> | T, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), ms)));
  try {
    return await Promise.race([Promise.resolve().then(work), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export class PluginLifecycle {
  private phase: Phase = 'new';
  private readonly registered: Registered[] = [];
  private readonly started: Registered[] = [];

  /** `plugins` must already be in dependency order (orderPlugins). */
  constructor(
    private readonly container: DependencyContainer,
    private readonly plugins: readonly LoadedPlugin[],
    private readonly options: LifecycleOptions,
  ) {}

  /** Names of the plugins that are running, in start order. */
  get running(): readonly string[] {
    return this.started.map((r) => r.manifest.name);
  }

  /** `config` is the whole effective configuration; each plugin gets the section named after it. */
  async register(config: Readonly<Record<string, unknown>>): Promise<void> {
    assert(this.phase === 'new', `register in phase ${this.phase}`);
    for (const { manifest } of this.plugins) {
      const section = (config[manifest.name] ?? {}) as object;
      const logger = this.options.logger.child({ plugin: manifest.name });
      let instance: PluginInstance | void;
      try {
        instance = await manifest.register(this.container, section, { logger, kernelVersion: KERNEL_VERSION, config });
      } catch (err) {
        throw PluginErrors.registerFailed(manifest.name, err);
      }
      this.registered.push({ manifest, instance: instance ?? {} });
    }
    this.phase = 'registered';
  }

  async start(): Promise<void> {
    assert(this.phase === 'registered', `start in phase ${this.phase}`);
    this.phase = 'starting';
    for (const entry of this.registered) {
      const { manifest, instance } = entry;
      const t0 = performance.now();
      let outcome: unknown;
      try {
        outcome = instance.start ? await within(() => instance.start!(), this.options.startTimeoutMs) : undefined;
      } catch (err) {
        const stopped = await this.rollback();
        throw PluginErrors.startFailed(manifest.name, err, stopped);
      }
      if (outcome === TIMED_OUT) {
        const stopped = await this.rollback();
        throw PluginErrors.startTimeout(manifest.name, this.options.startTimeoutMs, stopped);
      }
      this.started.push(entry);
      this.options.logger.info({ plugin: manifest.name, version: manifest.version, ms: Math.round(performance.now() - t0) }, 'plugin started');
    }
    this.phase = 'started';
  }

  /** Stops every started plugin in reverse order. Safe to call more than once. */
  async stop(): Promise<void> {
    if (this.phase === 'stopping' || this.phase === 'stopped') return;
    this.phase = 'stopping';
    await this.stopStarted();
    this.phase = 'stopped';
  }

  private async rollback(): Promise<string[]> {
    const names = this.started.map((r) => r.manifest.name).reverse();
    await this.stopStarted();
    this.phase = 'stopped';
    return names;
  }

  private async stopStarted(): Promise<void> {
    while (this.started.length > 0) {
      const { manifest, instance } = this.started.pop()!;
      if (!instance.stop) continue;
      try {
        const outcome = await within(() => instance.stop!(), this.options.stopTimeoutMs);
        if (outcome === TIMED_OUT) {
          this.options.logger.error({ plugin: manifest.name, timeoutMs: this.options.stopTimeoutMs }, 'plugin stop timed out; continuing');
        } else {
          this.options.logger.info({ plugin: manifest.name }, 'plugin stopped');
        }
      } catch (err) {
        this.options.logger.error({ plugin: manifest.name, err }, 'plugin stop failed; continuing');
      }
    }
  }
}
