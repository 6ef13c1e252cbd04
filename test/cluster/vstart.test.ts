// @slow — `fastblock vstart` as a user runs it (bin/fastblock.js, the compiled tree `npm run build`
// makes, as the README says): detached, stopped, restarted on the same directory (the data stays),
// in the foreground until SIGINT, and the three exports it prints really answer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePortBlock } from '../support/ports.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const CLI = [join(ROOT, 'bin', 'fastblock.js')];
const dir = mkdtempSync(join(tmpdir(), 'fastblock-vstart-'));


/** A base P with P, P+9, P+20, the /metrics ports P+30, P+31, P+40 + i and the OSD ports P+100 + 10 i (and their shard ports) free. */
function freePortBase(): Promise<number> {
  return freePortBlock([0, 9, 20, 30, 31, ...[0, 1, 2].flatMap((i) => [40 + i, 100 + 10 * i, 101 + 10 * i])]);
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

interface Summary {
  nbd: string;
  vhostSocket: string;
  nvmf: string;
  nvmeConnect: string;
  qemuVhostOptions: string;
  stop: string;
}

async function vstart(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [...CLI, 'vstart', '--dir', dir, ...args], { cwd: ROOT, timeout: 180_000 });
}

async function qemuIo(uri: string, command: string): Promise<string> {
  const { stdout } = await run('qemu-io', ['-f', 'raw', '-c', command, uri], { timeout: 60_000 });
  return stdout;
}

let base = 0;
let summary: Summary;
let foreground: ChildProcess | undefined;

test.after(async () => {
  if (foreground && foreground.exitCode === null) foreground.kill('SIGKILL');
  await run(process.execPath, [...CLI, 'vstart', 'stop', '--dir', dir], { cwd: ROOT }).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

test('vstart --detach brings up a cluster and prints NBD, vhost-user-blk and NVMe/TCP exports', async () => {
  base = await freePortBase();
  const { stdout } = await vstart(['--detach', '--json', '--port-base', String(base), '--image-size', String(256 * 2 ** 20)]);
  summary = JSON.parse(stdout) as Summary;
  assert.is(summary.nbd, `nbd://127.0.0.1:${base + 9}/rbd/disk`);
  assert.ok(existsSync(summary.vhostSocket), 'the vhost-user-blk socket exists');
  assert.match(summary.qemuVhostOptions, `path=${summary.vhostSocket}`);
  assert.is(summary.nvmeConnect, `nvme connect -t tcp -a 127.0.0.1 -s ${base + 20} -n nqn.2024-01.io.fastblock:rbd:disk`);
  assert.ok(await portOpen(base + 20), 'the NVMe/TCP target listens');
  const info = await run('qemu-img', ['info', '--output=json', summary.nbd]);
  assert.is((JSON.parse(info.stdout) as { 'virtual-size': number })['virtual-size'], 256 * 2 ** 20);
  assert.match(await qemuIo(summary.nbd, 'write -P 0xab 1M 64k'), 'wrote 65536/65536 bytes');
  // The compiled daemons find the native addons in the tree: the OSDs' stores run on io_uring.
  for (const osd of ['osd0', 'osd1', 'osd2']) {
    const log = readFileSync(join(dir, 'logs', `${osd}.log`), 'utf8');
    assert.match(log, '"io":"uring"', `${osd} opened its store without io_uring: ${log.split('\n').find((l) => l.includes('device opened') || l.includes('addon')) ?? ''}`);
  }
});

test('a second vstart on a running directory is refused; stop ends every daemon', async () => {
  const second = await vstart(['--detach']).then(
    () => undefined,
    (err: { code: number; stderr: string }) => err,
  );
  assert.ok(second, 'a second vstart on the same directory must fail');
  assert.match(second!.stderr, 'already running');
  const { stdout } = await run(process.execPath, [...CLI, 'vstart', 'stop', '--dir', dir, '--json'], { cwd: ROOT });
  assert.equal((JSON.parse(stdout) as { stopped: string[] }).stopped.sort(), ['gateway', 'mon', 'osd0', 'osd1', 'osd2']);
  assert.not.ok(await portOpen(base + 9), 'the NBD port is closed after stop');
});

test('in the foreground on the same directory: same ports, the data is still there, SIGINT stops it cleanly', async () => {
  const child = spawn(process.execPath, [...CLI, 'vstart', '--dir', dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  foreground = child;
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const deadline = Date.now() + 180_000;
  while (!out.includes('Stop: Ctrl-C')) {
    assert.ok(Date.now() < deadline && child.exitCode === null, `vstart did not come up:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.match(out, summary.nbd);
  assert.match(await qemuIo(summary.nbd, 'read -P 0xab 1M 64k'), 'read 65536/65536 bytes');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGINT');
  assert.is(await exited, 0);
  assert.match(out, 'the data stays in');
  assert.not.ok(await portOpen(base + 9), 'the gateway stopped with vstart');
});

test.run();
