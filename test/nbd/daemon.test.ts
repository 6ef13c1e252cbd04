/**
 * The `nbd` plugin inside a real fastblockd: loaded by its built-in name, configured through the
 * kernel's config (--set nbd.*), fed volumes by another plugin through the container, managed with
 * `fastblock nbd create|ls|rm` over the control RPC, stopped by SIGTERM. A bad nbd.* value stops
 * the daemon at start with a message naming the key.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
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

test.before(async () => {
  daemon = spawn(process.execPath, [...FASTBLOCKD, '--set', 'nbd.port=0', '--set', 'memory-volumes.volumes=pool/a:64,pool/b:8,pool/c:8', '--set', 'nbd.exports=pool/a,pool/b:ro', '--set', 'nbd.dynamicExports=false'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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

test('SIGTERM stops the plugin and the daemon exits 0', async () => {
  const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
  daemon.kill('SIGTERM');
  assert.is(await exited, 0);
  assert.ok(lines.some((l) => l.plugin === 'nbd' && l.msg === 'plugin stopped'));
});

test('an invalid nbd.* value is refused at start, naming the key', async () => {
  const result = await run(process.execPath, [...FASTBLOCKD, '--set', 'nbd.port=0', '--set', 'nbd.maxPayload=100'], { timeoutMs: 30_000 });
  assert.is(result.code, 1);
  assert.match(result.stderr, /maxPayload/);
});

test.run();
