/** Writes throwaway plugin modules into a temporary folder, for loader and lifecycle tests. */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export interface FakePluginSpec {
  readonly name: string;
  readonly kind?: string;
  readonly version?: string;
  readonly kernel?: string;
  readonly provides?: readonly string[];
  readonly requires?: readonly string[];
  /** JavaScript of start()'s body; it may use `log(event)`. */
  readonly start?: string;
  readonly stop?: string;
}

const scratchDirs: string[] = [];

/**
 * A fresh folder under the OS temp dir, removed with everything in it when the process exits
 * (passed or failed; only a kill leaves it), so no suite has to remember to.
 */
export function scratchDir(prefix = 'fastblock-plugins-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (scratchDirs.length === 0) {
    process.once('exit', () => {
      for (const made of scratchDirs) rmSync(made, { recursive: true, force: true });
    });
  }
  scratchDirs.push(dir);
  return dir;
}

/** Writes `<dir>/<file>` with a manifest built from spec; returns the path. */
export function writePlugin(dir: string, spec: FakePluginSpec, file = `${spec.name}.mjs`): string {
  const path = join(dir, file);
  mkdirSync(dirname(path), { recursive: true });
  const manifest = {
    name: spec.name,
    kind: spec.kind ?? 'extension',
    version: spec.version ?? '1.0.0',
    ...(spec.kernel ? { kernel: spec.kernel } : {}),
    provides: spec.provides ?? [],
    requires: spec.requires ?? [],
  };
  writeFileSync(
    path,
    `const log = (event) => (globalThis.__pluginEvents ??= []).push(event);
export default {
  ...${JSON.stringify(manifest)},
  register(container, config) {
    log('register ${spec.name}');
    return {
      async start() { log('start ${spec.name}'); ${spec.start ?? ''} },
      async stop() { log('stop ${spec.name}'); ${spec.stop ?? ''} },
    };
  },
};
`,
  );
  return path;
}

export function takeEvents(): string[] {
  const g = globalThis as { __pluginEvents?: string[] };
  const events = g.__pluginEvents ?? [];
  g.__pluginEvents = [];
  return events;
}
