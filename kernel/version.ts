/** The kernel's version: fastblock's package.json, found from sources (kernel/) and from dist/kernel/. */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function readVersion(): string {
  for (const relative of ['../package.json', '../../package.json']) {
    const path = fileURLToPath(new URL(relative, import.meta.url));
    if (!existsSync(path)) continue;
    const pkg = JSON.parse(readFileSync(path, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'fastblock' && typeof pkg.version === 'string') return pkg.version;
  }
  throw new Error(`fastblock package.json not found above ${import.meta.url}`);
}

export const KERNEL_VERSION = readVersion();

/** The package root: the folder holding kernel/ (the repository, or dist/ when built). */
export const KERNEL_ROOT = fileURLToPath(new URL('..', import.meta.url));
