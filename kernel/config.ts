/**
 * The daemon's configuration, one JSON file for every role (monitor, OSD, gateway).
 *
 * Precedence, lowest first: schema defaults < the file (--config) < FASTBLOCK_* environment
 * variables < CLI flags (--set key=value and the daemon's own flags). The kernel owns the
 * `daemon` and `log` sections; every loaded plugin adds a section named after itself from its
 * manifest's configSchema. Environment names are derived, never declared: tcp.requestTimeoutMs
 * is FASTBLOCK_TCP_REQUEST_TIMEOUT_MS.
 *
 * Inside a known section unknown keys are errors (a typo must not silently fall back to a
 * default). A whole top-level section nobody declared is only reported: the same file serves
 * daemons that load different plugins.
 */
import convict from 'convict';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { tryParseAddress } from './address.js';
import { ErrorCode, FastblockError } from './errors.js';
import type { PluginManifest } from './plugin.js';

convict.addFormat({
  name: 'address',
  validate(value: unknown) {
    if (typeof value !== 'string' || (value !== '' && !tryParseAddress(value))) throw new Error('must be HOST:PORT (e.g. 127.0.0.1:7700) or empty');
  },
});

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface KernelConfig {
  readonly daemon: {
    readonly name: string;
    /** The control RPC address (status, admin commands, services that share the port); '' = none. */
    readonly listen: string;
    readonly startTimeoutMs: number;
    readonly stopTimeoutMs: number;
  };
  readonly log: { readonly level: LogLevel };
  readonly metrics: {
    /** Where /metrics is served (Prometheus text); '' = not served. */
    readonly listen: string;
  };
}

const kernelSchema: convict.Schema<KernelConfig> = {
  daemon: {
    name: { doc: 'This daemon\'s name in logs and status', format: String, default: hostname() },
    listen: { doc: 'Control RPC address HOST:PORT (port 0: any free port; empty: do not listen)', format: 'address', default: '127.0.0.1:7700' },
    startTimeoutMs: { doc: 'Longest a plugin may take to start', format: 'nat', default: 30_000 },
    stopTimeoutMs: { doc: 'Longest a plugin may take to stop', format: 'nat', default: 10_000 },
  },
  log: {
    level: { doc: 'pino log level', format: [...LOG_LEVELS], default: 'info' },
  },
  metrics: {
    listen: { doc: 'HTTP address HOST:PORT serving Prometheus metrics at /metrics (port 0: any free port; empty: off)', format: 'address', default: '' },
  },
};

export interface ConfigSources {
  /** A JSON file. */
  readonly file?: string;
  /** Default: process.env. Only FASTBLOCK_* names are read. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Dotted key -> value, as given on the command line (strings are coerced by the key's format). */
  readonly overrides?: Readonly<Record<string, string | number | boolean>>;
  /** Plugins whose sections join the schema. */
  readonly plugins?: readonly PluginManifest[];
}

export interface EffectiveConfig {
  /** Every section, validated. Plugin sections are keyed by plugin name. */
  readonly values: KernelConfig & Readonly<Record<string, unknown>>;
  /** Top-level sections of the file that no loaded plugin declares (ignored). */
  readonly ignoredSections: readonly string[];
  /** Where each key's value came from: "default", the file, an env variable or "flag". */
  origin(key: string): string;
  /** Pretty JSON of the effective values (sensitive values masked). */
  print(): string;
}

type SchemaNode = Record<string, unknown>;

function isLeaf(node: unknown): node is SchemaNode {
  return typeof node === 'object' && node !== null && 'default' in node;
}

export function envName(key: string): string {
  return 'FASTBLOCK_' + key.split('.').map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** Copies `node`, giving every leaf its derived env name; collects the leaves' keys. */
function withEnv(node: SchemaNode, prefix: string, leaves: string[]): SchemaNode {
  if (isLeaf(node)) {
    leaves.push(prefix);
    return { ...node, env: envName(prefix) };
  }
  const out: SchemaNode = {};
  for (const [key, child] of Object.entries(node)) {
    if (typeof child !== 'object' || child === null) throw new FastblockError(ErrorCode.INTERNAL, `config schema node ${prefix}.${key} is not an object`);
    out[key] = withEnv(child as SchemaNode, prefix ? `${prefix}.${key}` : key, leaves);
  }
  return out;
}

function lookup(tree: unknown, key: string): unknown {
  let node = tree;
  for (const part of key.split('.')) {
    if (typeof node !== 'object' || node === null || !(part in node)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function invalid(message: string, context: Record<string, unknown>): FastblockError {
  return new FastblockError(ErrorCode.CONFIG_INVALID, `invalid config: ${message}`, context);
}

function readFile(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw invalid(`file ${file} does not exist; fix --config`, { file });
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw invalid(`file ${file} is not valid JSON (${(err as Error).message}); fix the file`, { file });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid(`file ${file} must hold a JSON object of sections`, { file });
  return parsed as Record<string, unknown>;
}

export function loadConfig(sources: ConfigSources = {}): EffectiveConfig {
  const env = sources.env ?? process.env;
  const overrides = sources.overrides ?? {};
  const leaves: string[] = [];
  const schema: SchemaNode = withEnv(kernelSchema as unknown as SchemaNode, '', leaves);
  for (const plugin of sources.plugins ?? []) {
    if (plugin.name in schema) throw invalid(`plugin '${plugin.name}' uses the reserved section name '${plugin.name}'`, { plugin: plugin.name });
    schema[plugin.name] = withEnv((plugin.configSchema ?? {}) as SchemaNode, plugin.name, leaves);
  }

  const fileValues = sources.file ? readFile(sources.file) : {};
  const ignoredSections = Object.keys(fileValues).filter((section) => !(section in schema));
  const known = Object.fromEntries(Object.entries(fileValues).filter(([section]) => section in schema));

  const origin = (key: string): string => {
    if (key in overrides) return 'flag';
    if (env[envName(key)] !== undefined) return envName(key);
    if (lookup(known, key) !== undefined) return sources.file!;
    return 'default';
  };
  const raw = (key: string): unknown => {
    if (key in overrides) return overrides[key];
    if (env[envName(key)] !== undefined) return env[envName(key)];
    return lookup(known, key);
  };

  const config = convict(schema as convict.Schema<Record<string, unknown>>, { env: { ...env } as NodeJS.ProcessEnv, args: [] });
  config.load(known);
  for (const [key, value] of Object.entries(overrides)) {
    if (!leaves.includes(key)) {
      throw invalid(`unknown key '${key}' (from a flag); known keys: ${leaves.join(', ')}`, { key });
    }
    config.set(key, value as never);
  }

  try {
    config.validate({ allowed: 'strict' });
  } catch (err) {
    const problems = (err as Error).message.split('\n').filter(Boolean).map((line) => {
      const undeclared = /^configuration param '(.+)' not declared in the schema$/.exec(line);
      if (undeclared) return `unknown key '${undeclared[1]}' in ${sources.file ?? 'the config'}`;
      const key = line.slice(0, line.indexOf(':'));
      const message = line.slice(key.length + 2).replace(/: value was .*$/, '');
      return `${key} = ${JSON.stringify(raw(key))} (from ${origin(key)}): ${message}`;
    });
    throw invalid(problems.join('; '), { problems });
  }

  const values = config.getProperties() as EffectiveConfig['values'];
  return {
    values,
    ignoredSections,
    origin,
    print: () => JSON.stringify(JSON.parse(config.toString()), null, 2),
  };
}
