#!/usr/bin/env -S node --initial-old-space-size=128
// The node flags are cli/daemon-node-flags.ts's (a shebang cannot import them; test/kernel checks they agree).
// Thin wrapper: the daemon is the compiled dist/cli/fastblockd.js (`npm run build`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/fastblockd.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('fastblockd: dist/cli/fastblockd.js is missing; run `npm run build` first\n');
  process.exit(1);
}
await import(entry.href);
