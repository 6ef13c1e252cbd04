// The whole test suite: installs missing system packages, installs npm dependencies, builds,
// then runs every uvu suite (test/**/*.test.ts) as its own process, several at once.
//
//   npm test                      everything
//   npm test -- raft blobstore    only suites whose path contains one of the words
//
// Env: FASTBLOCK_TEST_JOBS (parallel suites, default: cores + 1), FASTBLOCK_TEST_TIMEOUT_S (per suite, default 1500).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSystemPackages } from './system-deps.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2);
const jobs = Number(process.env.FASTBLOCK_TEST_JOBS ?? cpus().length + 1);
const timeoutMs = Number(process.env.FASTBLOCK_TEST_TIMEOUT_S ?? 1500) * 1000;
const started = Date.now();

function step(label, cmd, args) {
  const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`[test] ${label} failed (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
}

ensureSystemPackages((line) => console.log(line));
if (!existsSync(join(root, 'node_modules', '.bin', 'tsc'))) step('npm ci', 'npm', ['ci', '--no-audit', '--no-fund']);
step('build', process.execPath, [join(root, 'scripts', 'build.mjs')]);

function findSuites(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'fixtures' || entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findSuites(path));
    else if (entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

// Suites that say `// @slow` in their first lines start first so the long ones overlap the rest.
function isSlow(file) {
  return readFileSync(file, 'utf8').slice(0, 400).includes('@slow');
}

let suites = findSuites(join(root, 'test')).map((file) => relative(root, file));
if (filters.length) suites = suites.filter((s) => filters.some((f) => s.includes(f)));
suites.sort((a, b) => Number(isSlow(join(root, b))) - Number(isSlow(join(root, a))) || a.localeCompare(b));
if (suites.length === 0) {
  console.error('[test] no suites matched');
  process.exit(1);
}

const logDir = join(root, '.fastblock-test', 'logs');
mkdirSync(logDir, { recursive: true });

function parseCounts(output) {
  const grab = (label) => {
    const matches = [...output.matchAll(new RegExp(`${label}:\\s+(\\d+)`, 'g'))];
    return matches.reduce((sum, m) => sum + Number(m[1]), 0);
  };
  return { total: grab('Total'), passed: grab('Passed'), skipped: grab('Skipped') };
}

function runSuite(file) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: { ...process.env, NODE_DISABLE_COLORS: '1', NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      output += `\n[test] ${file} timed out after ${timeoutMs / 1000} s; killing its process group\n`;
      try { process.kill(-child.pid, 'SIGKILL'); } catch {}
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const counts = parseCounts(output);
      const failed = code !== 0 || counts.total === 0;
      resolve({ file, code, signal, output, counts, failed, seconds: (Date.now() - t0) / 1000 });
    });
  });
}

const results = [];
let next = 0;
async function worker() {
  while (next < suites.length) {
    const file = suites[next++];
    const result = await runSuite(file);
    results.push(result);
    const c = result.counts;
    const mark = result.failed ? 'FAIL' : 'ok  ';
    console.log(`${mark} ${file}  ${c.passed}/${c.total} passed${c.skipped ? `, ${c.skipped} skipped` : ''}  (${result.seconds.toFixed(1)} s)`);
    // Skip reasons are printed by the suites themselves; surface them.
    for (const line of result.output.split('\n')) if (line.startsWith('SKIP')) console.log(`     ${line}`);
    if (result.failed) {
      console.log(result.output.split('\n').map((l) => `     | ${l}`).join('\n'));
    }
  }
}
await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));

const passed = results.reduce((s, r) => s + r.counts.passed, 0);
const skipped = results.reduce((s, r) => s + r.counts.skipped, 0);
// A suite that crashed or timed out before uvu counted a failure still counts as one failed test.
const failedSuites = results.filter((r) => r.failed);
const failed = failedSuites.reduce((s, r) => s + Math.max(1, r.counts.total - r.counts.passed - r.counts.skipped), 0);
console.log(`\n[test] ${results.length} suites in ${((Date.now() - started) / 1000).toFixed(0)} s; failed suites: ${failedSuites.map((r) => r.file).join(', ') || 'none'}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failedSuites.length ? 1 : 0);
