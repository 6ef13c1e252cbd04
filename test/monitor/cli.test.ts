// @slow
// The monitor's admin CLI against a real monitor daemon (fastblockd --plugins tcp,monitor, embedded
// store): sizes like 10G/512M, --json everywhere, one-line errors with exit code 2 for mistyped
// names and bad sizes, --yes for destructive commands, and the cluster summary in `status`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatSize, parseSize } from '../../cli/commands/monitor-admin.js';
import { connect as connectCluster } from '../../client/connect.js';
import { FASTBLOCK, run, type Finished } from '../cli/daemon-process.js';
import { freePort } from './etcd-cluster.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fastblock-cli-'));
let daemon: ChildProcess;
let addr: string;

type Run = Finished;

const cli = (...args: string[]): Promise<Run> => run(FASTBLOCK, [...args, '--addr', addr]);

const json = (run: Run): any => JSON.parse(run.stdout.trim().split('\n').at(-1)!);

test.before(async () => {
  addr = `127.0.0.1:${await freePort()}`;
  daemon = spawn(process.execPath, ['--import', 'tsx', 'cli/fastblockd.ts', '--plugins', 'tcp,monitor', '--listen', addr, '--log-level', 'warn', '--set', `monitor.dataDir=${dir}`], {
    cwd: root,
    stdio: 'ignore',
  });
  // Probe the port, not the CLI: each CLI run is a whole node process.
  for (let i = 0; i < 150; i++) {
    const port = Number(addr.split(':')[1]);
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => (socket.destroy(), resolve(true)));
      socket.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('monitor daemon did not come up');
});

test.after(() => {
  daemon.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('sizes: 10G, 512M, 1.5T, 4096, 10GiB; garbage refused', () => {
  assert.is(parseSize('10G'), 10 * 2 ** 30);
  assert.is(parseSize('512M'), 512 * 2 ** 20);
  assert.is(parseSize('1.5T'), 1.5 * 2 ** 40);
  assert.is(parseSize('4096'), 4096);
  assert.is(parseSize('10GiB'), 10 * 2 ** 30);
  for (const bad of ['10X', '-1G', '', 'G', '0']) assert.throws(() => parseSize(bad), /is not a size/);
  assert.is(formatSize(10 * 2 ** 30), '10G');
});

test('pool and image lifecycle with --json', async () => {
  const pool = await cli('pool', 'create', 'rbd', '--pg-num', '16', '--json');
  assert.is(pool.code, 0, pool.stderr);
  assert.is(json(pool).pgNum, 16);
  const [a, b] = await Promise.all([cli('image', 'create', 'rbd/vm1', '--size', '10G', '--json'), cli('image', 'create', 'rbd/vm2', '--size', '512M', '--json')]);
  assert.is(json(a).sizeBytes, 10 * 2 ** 30);
  assert.is(json(b).sizeBytes, 512 * 2 ** 20);
  const [ls, info, pg, osd] = await Promise.all([cli('image', 'ls', 'rbd', '--json'), cli('image', 'info', 'rbd/vm1'), cli('pg', 'ls', '--json'), cli('osd', 'ls', '--json')]);
  assert.equal(json(osd), []);
  assert.equal(json(ls).map((i: { name: string }) => i.name).sort(), ['vm1', 'vm2']);
  assert.match(info.stdout, /size\s+10G/);
  assert.is(json(pg).length, 16);
  const grown = await cli('image', 'resize', 'rbd/vm2', '--size', '1G', '--json');
  assert.is(json(grown).sizeBytes, 2 ** 30);
});

test('mistyped names and bad sizes: one line, exit 2', async () => {
  const runs = await Promise.all([
    cli('image', 'create', 'rbd/vm3', '--size', '10X'),
    cli('image', 'info', 'rbd/nope'),
    cli('pool', 'rm', 'nope', '--yes'),
    cli('pool', 'craete', 'x'),
    cli('policy', 'ls', 'placment'),
  ]);
  for (const run of runs) {
    assert.is(run.code, 2, `${run.stderr}`);
    assert.ok(run.stderr.trim().length > 0);
  }
  for (const run of [runs[0], runs[1], runs[2], runs[4]]) assert.is(run.stderr.trim().split('\n').length, 1, run.stderr);
  assert.match(runs[0].stderr, /--size '10X' is not a size/);
  assert.match(runs[1].stderr, /no image 'nope' in pool 'rbd'/);
  const asJson = await cli('image', 'info', 'rbd/nope', '--json');
  assert.is(asJson.code, 2);
  assert.is(json(asJson).error.code, 'NOT_FOUND');
});

test('destructive commands need --yes', async () => {
  const [rm, shrink, out] = await Promise.all([cli('image', 'rm', 'rbd/vm1'), cli('image', 'resize', 'rbd/vm1', '--size', '1G'), cli('osd', 'out', '0')]);
  for (const run of [rm, shrink, out]) {
    assert.is(run.code, 2);
    assert.match(run.stderr, /add --yes/);
  }
  const removed = await cli('image', 'rm', 'rbd/vm1', '--yes', '--json');
  assert.is(removed.code, 0);
  const busy = await cli('pool', 'rm', 'rbd', '--yes');
  assert.is(busy.code, 1, 'a pool with images is refused (not a usage error)');
  assert.match(busy.stderr, /still holds 1 image/);
});

test('image rm is refused while a client has the image open; status names the client; --force overrides', async () => {
  await cli('image', 'create', 'rbd/busy', '--size', '64M');
  await cli('image', 'create', 'rbd/forced', '--size', '64M');
  const client = await connectCluster({ monitors: [addr], name: 'cli-test-vm' });
  try {
    const busy = await client.openImage('rbd/busy');
    const forced = await client.openImage('rbd/forced');
    // The watch is registered in the background of openImage: wait until the monitor has it.
    let status: any;
    for (let i = 0; i < 50; i++) {
      status = json(await cli('image', 'status', 'rbd/busy', '--json'));
      if (status.watchers.length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.is(status.watchersKnown, true);
    assert.is(status.watchers.length, 1);
    assert.match(status.watchers[0].description, /^cli-test-vm on /);
    const human = await cli('image', 'status', 'rbd/busy');
    assert.match(human.stdout, /cli-test-vm on .*\(pid \d+\)/);
    const refused = await cli('image', 'rm', 'rbd/busy', '--yes');
    assert.is(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /image 'rbd\/busy' is open by 1 client: cli-test-vm on .*close it first \(or force\)/);
    assert.is((await cli('image', 'info', 'rbd/busy')).code, 0, 'still there');
    assert.is(busy.size, 64 * 2 ** 20, 'and its client still sees it (this monitor-only cluster has no OSDs for I/O)');
    // Closing the image drops the watch at once (no lease to wait out).
    await busy.close();
    assert.equal(json(await cli('image', 'status', 'rbd/busy', '--json')).watchers, []);
    assert.is((await cli('image', 'rm', 'rbd/busy', '--yes')).code, 0);
    while (json(await cli('image', 'status', 'rbd/forced', '--json')).watchers.length === 0) await new Promise((r) => setTimeout(r, 100));
    const removed = await cli('image', 'rm', 'rbd/forced', '--yes', '--force');
    assert.is(removed.code, 0, removed.stderr);
    await forced.close();
  } finally {
    await client.close();
  }
  const left = json(await cli('image', 'ls', 'rbd', '--json')).map((i: { name: string }) => i.name);
  assert.not.ok(left.includes('busy') || left.includes('forced'), left.join(','));
});

/** The built-in placement policy padded with a 100 KB custom section: still valid, too big for an admin call. */
function bigPolicy(): Uint8Array {
  const wasm = readFileSync(join(root, 'policies/build/placement.wasm'));
  const name = Buffer.from('padding');
  const body = Buffer.concat([Buffer.from([name.length]), name, Buffer.alloc(100_000, 0x61)]);
  const size: number[] = [];
  for (let n = body.length; ; ) {
    const byte = n & 0x7f;
    n = Math.floor(n / 128);
    size.push(n ? byte | 0x80 : byte);
    if (!n) break;
  }
  return Buffer.concat([wasm, Buffer.from([0, ...size]), body]);
}

test('a policy larger than an admin call: set --yes, then get --out returns the same bytes', async () => {
  const file = join(dir, 'big-policy.wasm');
  const copy = join(dir, 'copy.wasm');
  writeFileSync(file, bigPolicy());
  const set = await cli('policy', 'set', 'placement', file, '--yes', '--json');
  assert.is(set.code, 0, set.stderr);
  assert.is(json(set).version, 1);
  assert.not.ok(json(set).dryRun);
  const get = await cli('policy', 'get', 'placement', '--out', copy, '--json');
  assert.is(get.code, 0, get.stderr);
  assert.equal(readFileSync(copy), readFileSync(file));
  assert.is(json(get).version, 1);
});

test('policy set is a dry run without --yes; status shows the cluster', async () => {
  const dry = await cli('policy', 'set', 'placement', join(root, 'policies/build/placement.wasm'));
  assert.is(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /dry run: placement policy 'placement' version 2/);
  assert.match(dry.stdout, /add --yes/);
  const [status, statusJson] = await Promise.all([cli('status'), cli('status', '--json')]);
  assert.match(status.stdout, /health\s+HEALTH_/);
  assert.match(status.stdout, /pgs\s+16/);
  assert.is(json(statusJson).cluster.pgs.total, 16);
});

test.run();
