/**
 * The `nbd` plugin inside a real fastblockd: loaded by its built-in name, configured through the
 * kernel's config (--set nbd.*), fed volumes by another plugin through the container, managed with
 * `fastblock nbd create|ls|rm` over the control RPC, stopped by SIGTERM. A bad nbd.* value stops
 * the daemon at start with a message naming the key. Cache modes: a configured export is writeback
 * from its entry, `nbd create --cache` picks one per export, `nbd ls` shows each (writeback: its
 * dirty bytes), the stop drains the logs; an unknown entry suffix stops the daemon at start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { ROOT, run, runOk } from './harness.js';

const test = suite('nbd: plugin in fastblockd');
const FASTBLOCKD = ['--import', 'tsx', 'cli/fastblockd.ts', '--plugins', 'tcp,./test/nbd/memory-plugin.ts,nbd', '--listen', '127.0.0.1:0'];
let daemon: ChildProcess;
let port = 0;
let control = '';

async function fastblock(...args: string[]): Promise<unknown> {
  const { stdout } = await runOk(process.execPath, ['--import', 'tsx', 'cli/fastblock.ts', ...args, '--addr', control, '--json'], { timeoutMs: 30_000 });
  return JSON.parse(stdout);
}
const lines: Array<Record<string, unknown>> = [];
const dir = mkdtempSync(join(tmpdir(), 'fastblock-nbd-daemon-'));
const writeBackDir = join(dir, 'write-back');

test.before(async () => {
  daemon = spawn(
    process.execPath,
    [
      ...FASTBLOCKD,
      '--set', 'nbd.port=0',
      '--set', 'memory-volumes.volumes=pool/a:64,pool/b:8,pool/c:8,pool/d:8',
      '--set', 'nbd.exports=pool/a:writeback,pool/b:ro',
      '--set', 'nbd.dynamicExports=false',
      '--set', `nbd.writeBackDir=${writeBackDir}`,
      '--set', 'nbd.writeBackMiB=4',
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  daemon.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  port = await new Promise<number>((resolve, reject) => {
    daemon.once('exit', (code) => reject(new Error(`fastblockd exited ${code}: ${stderr}`)));
    createInterface({ input: daemon.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      lines.push(entry);
      if (entry.msg === 'NBD server listening') port = entry.port as number;
      if (entry.msg === 'fastblockd ready') {
        control = entry.listen as string;
        resolve(port);
      }
    });
  });
});

test.after(async () => {
  if (daemon.exitCode === null) daemon.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('exports from the config section serve data; read-only is honoured', async () => {
  const uri = `nbd://127.0.0.1:${port}`;
  const list = await runOk('nbdinfo', ['--list', '--json', `${uri}/`]);
  const exports = (JSON.parse(list.stdout) as { exports: Array<{ 'export-name': string; is_read_only: boolean }> }).exports;
  assert.equal(exports.map((e) => [e['export-name'], e.is_read_only]).sort(), [['pool/a', false], ['pool/b', true]]);
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x61 0 1M', '-c', 'read -P 0x61 0 1M', `${uri}/pool/a`]);
  const unknown = await run('nbdinfo', [`${uri}/pool/c`]);
  assert.is.not(unknown.code, 0, 'dynamicExports=false: only configured exports');
});

test('fastblock nbd create | ls | rm', async () => {
  const created = (await fastblock('nbd', 'create', 'pool/c')) as { location: string };
  assert.is(created.location, `nbd://127.0.0.1:${port}/pool/c`);
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x63 0 4k', '-c', 'read -P 0x63 0 4k', created.location]);
  const listed = (await fastblock('nbd', 'ls')) as Array<{ volume: string }>;
  assert.equal(listed.map((e) => e.volume).sort(), ['pool/a', 'pool/b', 'pool/c']);
  await fastblock('nbd', 'rm', 'pool/c');
  assert.is.not((await run('nbdinfo', [created.location])).code, 0, 'removed export is gone');
  const missing = await run(process.execPath, ['--import', 'tsx', 'cli/fastblock.ts', 'nbd', 'create', 'pool/none', '--addr', control], { timeoutMs: 30_000 });
  assert.is(missing.code, 1);
  assert.match(missing.stderr, /pool\/none/);
});

test('cache modes: the configured writeback export, nbd create --cache, nbd ls', async () => {
  const listed = ((await fastblock('nbd', 'ls')) as ExportInfo[]).sort((x, y) => x.volume.localeCompare(y.volume));
  assert.equal(listed.map((e) => [e.volume, e.details?.cache, e.details?.readOnly]), [
    ['pool/a', 'writeback', false],
    ['pool/b', 'writethrough', true],
  ]);
  const { readCacheBytes, readCacheHits, readCacheMisses, ...writeBack } = listed[0]!.details as Record<string, number>;
  assert.equal(writeBack, { cache: 'writeback', readOnly: false, dirtyBytes: 0, dirtyRecords: 0, usedBytes: 0, capacityBytes: 4 * 1024 * 1024, retries: 0, replayed: 0, absorbed: 0, readCacheCapacityBytes: 64 * 1024 * 1024 });
  // What earlier tests wrote and read through the export is cached; each read a hit or a miss.
  assert.ok(readCacheBytes! > 0 && readCacheHits! + readCacheMisses! > 0, `read cache ${readCacheBytes} bytes, ${readCacheHits} hits, ${readCacheMisses} misses`);
  assert.ok(existsSync(join(writeBackDir, 'pool%2Fa.wblog')), 'the configured writeback export has its log');

  const created = (await fastblock('nbd', 'create', 'pool/d', '--cache', 'writeback')) as ExportInfo;
  assert.is(created.details?.cache, 'writeback');
  await runOk('qemu-io', ['-f', 'raw', '-t', 'writeback', '-c', 'write -P 0x64 0 64k', '-c', 'flush', '-c', 'read -P 0x64 0 64k', created.location]);
  const human = await runOk(process.execPath, ['--import', 'tsx', 'cli/fastblock.ts', 'nbd', 'ls', '--addr', control], { timeoutMs: 30_000 });
  assert.match(human.stdout, /pool\/a .* cache=writeback dirty=0\.0 MiB log=0\.0 MiB\/4\.0 MiB/);
  assert.match(human.stdout, /pool\/b .* ro cache=writethrough/);
  assert.match(human.stdout, /pool\/d .* cache=writeback dirty=/);

  const badMode = await run(process.execPath, ['--import', 'tsx', 'cli/fastblock.ts', 'nbd', 'create', 'pool/c', '--cache', 'writearound', '--addr', control], { timeoutMs: 30_000 });
  assert.is.not(badMode.code, 0);
  assert.match(badMode.stderr, 'writearound');
  const otherMode = await run(process.execPath, ['--import', 'tsx', 'cli/fastblock.ts', 'nbd', 'create', 'pool/d', '--cache', 'writethrough', '--addr', control, '--json'], { timeoutMs: 30_000 });
  assert.is(otherMode.code, 1);
  assert.match(otherMode.stdout + otherMode.stderr, 'BUSY');
  await fastblock('nbd', 'rm', 'pool/d');
  assert.not.ok(existsSync(join(writeBackDir, 'pool%2Fd.wblog')), 'rm (no client left) drains and removes the log');
});

test('SIGTERM stops the plugin and the daemon exits 0', async () => {
  const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
  daemon.kill('SIGTERM');
  assert.is(await exited, 0);
  assert.ok(lines.some((l) => l.plugin === 'nbd' && l.msg === 'plugin stopped'));
  assert.not.ok(existsSync(join(writeBackDir, 'pool%2Fa.wblog')), 'the stop drained and removed the configured export\'s log');
});

test('an invalid nbd.* value is refused at start, naming the key', async () => {
  const result = await run(process.execPath, [...FASTBLOCKD, '--set', 'nbd.port=0', '--set', 'nbd.maxPayload=100'], { timeoutMs: 30_000 });
  assert.is(result.code, 1);
  assert.match(result.stderr, /maxPayload/);
});

test('an export entry with an unknown suffix stops the daemon at start, naming the entry', async () => {
  const result = await run(
    process.execPath,
    [...FASTBLOCKD, '--set', 'nbd.port=0', '--set', 'memory-volumes.volumes=pool/a:8', '--set', 'nbd.exports=pool/a:rw', '--set', `nbd.writeBackDir=${writeBackDir}`],
    { timeoutMs: 30_000 },
  );
  assert.is(result.code, 1);
  assert.match(result.stderr + result.stdout, 'pool/a:rw');
  assert.match(result.stderr + result.stdout, 'unknown suffix');
});

test.run();
