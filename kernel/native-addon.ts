/**
 * Finds and loads a native addon that `npm run build` compiled with node-gyp into the folder
 * `native/build/Release/` beside the module asking for it (kernel/native, a plugin's native/).
 * From the sources (tsx) the addon is beside the module; compiled, the module runs from dist/ and
 * the addon is still in the source tree, at the same path without the dist/ step.
 */
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LoadedAddon<T> {
  readonly addon?: T;
  /** Why it did not load: the first candidate's error. */
  readonly error?: Error;
  /** Where it was looked for, in order. */
  readonly candidates: readonly string[];
}

/** The paths an addon named `file` (e.g. "kernel_native.node") of the module at `moduleUrl` may be at. */
export function addonCandidates(moduleUrl: string, file: string): string[] {
  const here = dirname(fileURLToPath(moduleUrl));
  const dirs = [here];
  const dist = here.lastIndexOf(`${sep}dist${sep}`);
  if (dist >= 0) dirs.push(join(here.slice(0, dist), here.slice(dist + `${sep}dist`.length)));
  return dirs.map((dir) => join(dir, 'native', 'build', 'Release', file));
}

/** Loads the first candidate that loads; the addon is undefined (with the reason) when none does. */
export function loadNativeAddon<T>(moduleUrl: string, file: string): LoadedAddon<T> {
  const candidates = addonCandidates(moduleUrl, file);
  const require = createRequire(moduleUrl);
  let error: Error | undefined;
  for (const path of candidates) {
    try {
      return { addon: require(path) as T, candidates };
    } catch (err) {
      error ??= err as Error;
    }
  }
  return { error, candidates };
}
