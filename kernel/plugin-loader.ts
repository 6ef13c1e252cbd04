/**
 * Turns the names given to `--plugins` into validated manifests.
 *
 *   tcp, blobstore, ...      built-in short names -> <package root>/<folder>/plugin.js (.ts from sources)
 *   ./dir, /abs/file.js      paths (anything starting with . or /): a file, or a folder holding plugin.js
 *                            or a package.json
 *   @acme/fastblock-x, foo   npm package names, resolved from each `searchFrom` folder (the daemon's
 *                            working directory by default), then from where fastblock itself is installed
 *
 * A manifest is checked before anything runs: shape, semver version, known contracts, and the
 * kernel range it declares. Cross-plugin checks (duplicates, requirements) are plugin-graph.ts.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import semver from 'semver';
import { TOKENS, type ContractName } from './container.js';
import { BUILTIN_PLUGINS, type PluginKind, type PluginManifest } from './plugin.js';
import { PluginErrors } from './plugin-errors.js';
import { KERNEL_ROOT, KERNEL_VERSION } from './version.js';

export interface LoadedPlugin {
  readonly manifest: PluginManifest;
  /** The name as given on the command line. */
  readonly requested: string;
  /** Where it came from: "built-in", "package", or "path". */
  readonly origin: 'built-in' | 'package' | 'path';
  /** The module file that was imported. */
  readonly file: string;
}

export interface LoaderOptions {
  /** Folders to resolve npm package names from. Default: [process.cwd()]. */
  readonly searchFrom?: readonly string[];
  /** The version plugins' `kernel` ranges are checked against. Default: fastblock's own. */
  readonly kernelVersion?: string;
}

const PLUGIN_KINDS: readonly PluginKind[] = ['transport', 'store', 'frontend', 'policy', 'service', 'extension'];
const NPM_NAME = /^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*$/;
const PLUGIN_NAME = /^[a-z][a-z0-9-]*$/;

export async function loadPlugins(names: readonly string[], options: LoaderOptions = {}): Promise<LoadedPlugin[]> {
  const loaded: LoadedPlugin[] = [];
  for (const name of names) loaded.push(await loadPlugin(name, options));
  return loaded;
}

export async function loadPlugin(requested: string, options: LoaderOptions = {}): Promise<LoadedPlugin> {
  const target = locate(requested, options.searchFrom ?? [process.cwd()]);
  let namespace: { default?: unknown };
  try {
    namespace = (await import(pathToFileURL(target.file).href)) as { default?: unknown };
  } catch (err) {
    throw PluginErrors.importFailed(requested, target.file, err);
  }
  const manifest = checkManifest(requested, target.file, namespace.default);
  if (target.origin === 'built-in' && manifest.name !== requested) {
    throw PluginErrors.notAPlugin(requested, target.file, `built-in '${requested}' declares name '${manifest.name}'`);
  }
  const kernelVersion = options.kernelVersion ?? KERNEL_VERSION;
  if (manifest.kernel !== undefined && !semver.satisfies(kernelVersion, manifest.kernel, { includePrerelease: true })) {
    throw PluginErrors.kernelMismatch(manifest.name, manifest.kernel, kernelVersion, manifest.version);
  }
  return { manifest, requested, origin: target.origin, file: target.file };
}

interface Target {
  readonly origin: LoadedPlugin['origin'];
  readonly file: string;
}

function locate(requested: string, searchFrom: readonly string[]): Target {
  const builtin = BUILTIN_PLUGINS.find((b) => b.name === requested);
  if (builtin) {
    const file = moduleFile(join(KERNEL_ROOT, builtin.folder, 'plugin'));
    if (!file) throw PluginErrors.notBuilt(requested, join(builtin.folder, 'plugin.ts'));
    return { origin: 'built-in', file };
  }
  if (requested.startsWith('.') || isAbsolute(requested)) {
    const file = pathEntry(resolve(requested));
    if (!file) throw PluginErrors.unknown(requested, BUILTIN_PLUGINS.map((b) => b.name), [resolve(requested)]);
    return { origin: 'path', file };
  }
  if (NPM_NAME.test(requested)) {
    // The operator's folders first, then fastblock's own node_modules (a plugin installed beside it).
    for (const base of [...searchFrom, KERNEL_ROOT]) {
      try {
        return { origin: 'package', file: createRequire(join(resolve(base), 'package.json')).resolve(requested) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw PluginErrors.importFailed(requested, base, err);
      }
    }
  }
  throw PluginErrors.unknown(requested, BUILTIN_PLUGINS.map((b) => b.name), searchFrom);
}

/** `base` + .js when built, + .ts when running from sources under tsx. */
function moduleFile(base: string): string | undefined {
  for (const ext of ['.js', '.ts']) if (existsSync(base + ext)) return base + ext;
  return undefined;
}

function pathEntry(path: string): string | undefined {
  if (!existsSync(path)) return moduleFile(path.replace(/\.(js|ts)$/, ''));
  if (!statSync(path).isDirectory()) return path;
  const own = moduleFile(join(path, 'plugin'));
  if (own) return own;
  const pkgFile = join(path, 'package.json');
  if (!existsSync(pkgFile)) return undefined;
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { main?: unknown; exports?: unknown };
  const entry = typeof pkg.exports === 'string' ? pkg.exports : typeof pkg.main === 'string' ? pkg.main : 'index.js';
  return existsSync(join(path, entry)) ? join(path, entry) : undefined;
}

function checkManifest(requested: string, file: string, value: unknown): PluginManifest {
  const fail = (problem: string) => PluginErrors.notAPlugin(requested, file, problem);
  if (typeof value !== 'object' || value === null) throw fail('no default export object');
  const m = value as Record<string, unknown>;
  if (typeof m.register !== 'function') throw fail('default export has no register() function');
  if (typeof m.name !== 'string' || !PLUGIN_NAME.test(m.name)) throw fail(`name ${JSON.stringify(m.name)} is not a lowercase identifier`);
  if (typeof m.kind !== 'string' || !PLUGIN_KINDS.includes(m.kind as PluginKind)) {
    throw fail(`kind ${JSON.stringify(m.kind)} is not one of ${PLUGIN_KINDS.join(', ')}`);
  }
  if (typeof m.version !== 'string' || semver.valid(m.version) === null) throw fail(`version ${JSON.stringify(m.version)} is not semver`);
  if (m.kernel !== undefined && (typeof m.kernel !== 'string' || semver.validRange(m.kernel) === null)) {
    throw fail(`kernel ${JSON.stringify(m.kernel)} is not a semver range`);
  }
  for (const field of ['provides', 'requires'] as const) {
    const list = m[field];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw fail(`${field} is not an array`);
    for (const contract of list) {
      if (typeof contract !== 'string' || !(contract in TOKENS)) {
        throw fail(`${field} names ${JSON.stringify(contract)}, not a contract (${Object.keys(TOKENS).join(', ')})`);
      }
    }
  }
  if (m.configSchema !== undefined && (typeof m.configSchema !== 'object' || m.configSchema === null)) throw fail('configSchema is not an object');
  return value as PluginManifest;
}

export type { ContractName };
