#!/usr/bin/env node
// Thin wrapper: the admin CLI is the compiled dist/cli/fastblock.js (`npm run build`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/fastblock.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('fastblock: dist/cli/fastblock.js is missing; run `npm run build` first\n');
  process.exit(1);
}
await import(entry.href);
