// Build: TypeScript (tsc -> dist/), native addons (kernel/native and plugins/*/native: node-gyp, only when sources changed),
// and any build step a part of the tree declares in a build.mjs of its own (policies/ -> .wasm).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILD_DEPS, ensureSystemPackages } from './system-deps.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);

function run(label, cmd, args, cwd = root) {
  const started = Date.now();
  const result = spawnSync(cmd, args, { cwd, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`[build] ${label} failed (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
  console.log(`[build] ${label} ok (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'build' || entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function nativeDirs() {
  // The kernel's own addon (kernel/native: the frame checksum), then every plugin's.
  const dirs = existsSync(join(root, 'kernel', 'native', 'binding.gyp')) ? [join(root, 'kernel', 'native')] : [];
  const pluginsDir = join(root, 'plugins');
  if (!existsSync(pluginsDir)) return dirs;
  for (const plugin of readdirSync(pluginsDir)) {
    const native = join(pluginsDir, plugin, 'native');
    if (existsSync(join(native, 'binding.gyp'))) dirs.push(native);
  }
  return dirs;
}

// Extra steps: any build.mjs under policies/ or plugins/*/ (not native/).
function extraSteps() {
  const steps = [];
  if (existsSync(join(root, 'policies', 'build.mjs'))) steps.push(join(root, 'policies', 'build.mjs'));
  const pluginsDir = join(root, 'plugins');
  if (existsSync(pluginsDir)) {
    for (const plugin of readdirSync(pluginsDir)) {
      const step = join(pluginsDir, plugin, 'build.mjs');
      if (existsSync(step)) steps.push(step);
    }
  }
  return steps;
}

ensureSystemPackages((line) => console.log(`[build] ${line}`), BUILD_DEPS);
run('tsc', bin('tsc'), ['-p', 'tsconfig.json']);

// Use the headers installed beside this node (Debian/nodesource ship include/node): node-gyp would
// otherwise download them, and the build machines have no route to nodejs.org.
const localHeaders = join(dirname(dirname(process.execPath)), 'include', 'node');
const nodedirArgs = existsSync(join(localHeaders, 'common.gypi')) ? [`--nodedir=${dirname(dirname(process.execPath))}`] : [];

function upToDate(dir) {
  const built = join(dir, 'build', 'Release');
  const builtAt = existsSync(built) ? Math.max(0, ...readdirSync(built).filter((f) => f.endsWith('.node')).map((f) => statSync(join(built, f)).mtimeMs)) : 0;
  return builtAt > newestMtime(dir);
}

// Several builds may run at once in one checkout (parallel test runs); two node-gyp runs in one
// build/ directory break each other. One at a time per addon: a lock directory (mkdir is atomic),
// and the staleness check again once it is held.
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
function withLock(dir, work) {
  const lock = join(dir, '.build-lock');
  for (let waited = 0; ; waited += 200) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      // A build killed half-way leaves its lock; none takes 10 minutes.
      if (Date.now() - statSync(lock).mtimeMs > 600_000) rmSync(lock, { recursive: true, force: true });
      sleep(200);
    }
  }
  try {
    work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

for (const dir of nativeDirs()) {
  const name = dir.slice(root.length + 1);
  if (upToDate(dir)) {
    console.log(`[build] ${name} up to date`);
    continue;
  }
  let status = 0;
  withLock(dir, () => {
    if (upToDate(dir)) return console.log(`[build] ${name} up to date`);
    const started = Date.now();
    const args = [join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), 'rebuild', '--silent', ...nodedirArgs];
    status = spawnSync(process.execPath, args, { cwd: dir, stdio: 'inherit' }).status ?? 1;
    if (status === 0) console.log(`[build] node-gyp ${name} ok (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  });
  if (status !== 0) {
    console.error(`[build] node-gyp ${name} failed (exit ${status})`);
    process.exit(1);
  }
}

for (const step of extraSteps()) run(step.slice(root.length + 1), process.execPath, [step]);
