// @slow
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FASTBLOCK, FASTBLOCKD, run, start } from './daemon-process.js';

const scratch = mkdtempSync(join(tmpdir(), 'fastblock-cli-'));
// An operator's folder with the sample plugin installed as an npm package (a symlink is what
// `npm install ./path` makes), so the daemon finds it by package name from its working directory.
const project = join(scratch, 'project');
mkdirSync(join(project, 'node_modules'), { recursive: true });
symlinkSync(new URL('../fixtures/sample-plugin', import.meta.url).pathname, join(project, 'node_modules', 'fastblock-plugin-sample'));
// rmSync removes the symlink, not the fixture it points to.
test.after(() => rmSync(scratch, { recursive: true, force: true }));

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.is(lines.length, 1, `one line on stderr, got: ${stderr}`);
  return lines[0]!;
}

test('--help lists every built-in plugin with one line each', async () => {
  const { code, stdout } = await run(FASTBLOCKD, ['--help']);
  assert.is(code, 0);
  for (const name of ['tcp', 'rdma', 'blobstore', 'placement', 'nbd', 'vhost', 'nvmf', 'monitor']) {
    assert.match(stdout, new RegExp(`\\n  ${name}\\s+\\S.+\\n`), name);
  }
  assert.match(stdout, /--print-config/);
});

test('plugin errors: one line naming the plugin and the fix, exit 1', async () => {
  const unknown = await run(FASTBLOCKD, ['--plugins', 'tcp,no-such-plugin']);
  assert.is(unknown.code, 1);
  assert.match(oneLine(unknown.stderr), /^fastblockd: plugin 'no-such-plugin': unknown plugin: .*npm install no-such-plugin/);

  const both = await run(FASTBLOCKD, ['--plugins', 'tcp,rdma']);
  assert.is(both.code, 1);
  assert.match(oneLine(both.stderr), /^fastblockd: plugin 'rdma': provides Transport, which plugin 'tcp' already provides/);

  const frontend = join(scratch, 'frontend.mjs');
  writeFileSync(frontend, "export default { name: 'front', kind: 'frontend', version: '1.0.0', provides: ['Frontend'], requires: ['Transport'], register() {} };\n");
  const missing = await run(FASTBLOCKD, ['--plugins', frontend]);
  assert.is(missing.code, 1);
  assert.match(oneLine(missing.stderr), /^fastblockd: plugin 'front': requires Transport, which no loaded plugin provides; add a plugin/);
});

test('--print-config: file < FASTBLOCK_* env < flags, plugin sections included', async () => {
  const file = join(scratch, 'print.json');
  writeFileSync(file, JSON.stringify({ tcp: { requestTimeoutMs: 1111, connectTimeoutMs: 2222, backoffMaxMs: 3333 }, monitor: { anything: true } }));
  const { code, stdout } = await run(FASTBLOCKD, ['--plugins', 'tcp', '--config', file, '--print-config', '--set', 'tcp.backoffMaxMs=4444'], {
    env: { FASTBLOCK_TCP_CONNECT_TIMEOUT_MS: '5555' },
  });
  assert.is(code, 0);
  const printed = JSON.parse(stdout) as { tcp: Record<string, number>; daemon: Record<string, unknown> };
  assert.is(printed.tcp.requestTimeoutMs, 1111);
  assert.is(printed.tcp.connectTimeoutMs, 5555);
  assert.is(printed.tcp.backoffMaxMs, 4444);
  assert.is(printed.daemon.listen, '127.0.0.1:7700');
});

test('an invalid config value: one line naming key, value, source and expectation, exit 1', async () => {
  const { code, stderr } = await run(FASTBLOCKD, ['--plugins', 'tcp', '--print-config'], { env: { FASTBLOCK_TCP_REQUEST_TIMEOUT_MS: 'soon' } });
  assert.is(code, 1);
  assert.match(oneLine(stderr), /^fastblockd: invalid config: tcp\.requestTimeoutMs = "soon" \(from FASTBLOCK_TCP_REQUEST_TIMEOUT_MS\): must be a positive integer/);
});

test('a daemon with a third-party plugin loaded by package name; status over the control RPC; SIGTERM stops in reverse order', async () => {
  const config = join(scratch, 'daemon.json');
  writeFileSync(config, JSON.stringify({ daemon: { listen: '127.0.0.1:0', name: 'cli-test' }, sample: { greeting: 'hej' } }));
  const daemon = start(FASTBLOCKD, ['--plugins', 'tcp,fastblock-plugin-sample', '--config', config], { cwd: project });
  try {
    const ready = await daemon.waitFor(/fastblockd ready/);
    const addr = String(ready.listen);
    assert.match(addr, /^127\.0\.0\.1:\d+$/);

    const status = await run(FASTBLOCK, ['status', '--addr', addr, '--json']);
    assert.is(status.code, 0, status.stderr);
    const reply = JSON.parse(status.stdout) as { daemon: string; plugins: { name: string; origin: string; version: string }[]; commands: { name: string }[] };
    assert.is(reply.daemon, 'cli-test');
    assert.equal(reply.plugins.map((p) => [p.name, p.origin, p.version]), [['tcp', 'built-in', '0.1.0'], ['sample', 'package', '1.2.0']]);
    assert.equal(reply.commands.map((c) => c.name), ['sample greet']);

    const text = await run(FASTBLOCK, ['status', '--addr', addr]);
    assert.is(text.code, 0);
    assert.match(text.stdout, /daemon\s+cli-test/);
    assert.match(text.stdout, /sample greet/);

    const { TcpTransport } = await import('../../plugins/transport-tcp/tcp-transport.js');
    const { runAdmin } = await import('../../kernel/rpc/control.js');
    const { silentLogger } = await import('../../kernel/logger.js');
    const { parseAddress } = await import('../../kernel/address.js');
    const client = new TcpTransport({}, silentLogger());
    const connection = client.connect({ address: parseAddress(addr), shard: 0 });
    const greeting = (await runAdmin(connection, 'sample greet', { who: 'fastblock' })) as { greeting: string };
    assert.is(greeting.greeting, 'hej, fastblock');
    await assert.not.throws(async () => runAdmin(connection, 'no such command').catch(() => undefined));
    await client.close();

    daemon.child.kill('SIGTERM');
    const finished = await daemon.exit;
    assert.is(finished.code, 0, finished.stderr);
    const stops = daemon.lines.filter((l) => l.msg === 'plugin stopped').map((l) => l.plugin);
    assert.equal(stops, ['sample', 'tcp']);
  } finally {
    daemon.child.kill('SIGKILL');
  }
});

test('SIGINT also stops cleanly with exit 0', async () => {
  const daemon = start(FASTBLOCKD, ['--plugins', 'tcp', '--listen', '127.0.0.1:0']);
  await daemon.waitFor(/fastblockd ready/);
  daemon.child.kill('SIGINT');
  const finished = await daemon.exit;
  assert.is(finished.code, 0);
  assert.ok(daemon.lines.some((l) => l.msg === 'stopped'));
});

test('a plugin whose start fails: one line, those started are stopped, exit 1', async () => {
  const daemon = start(FASTBLOCKD, ['--plugins', 'tcp,fastblock-plugin-sample', '--listen', '127.0.0.1:0', '--set', 'sample.failStart=true'], { cwd: project });
  const finished = await daemon.exit;
  assert.is(finished.code, 1);
  assert.is(oneLine(finished.stderr), "fastblockd: plugin 'sample': start() failed: sample.failStart is set; stopped tcp; fix the cause above and start the daemon again");
  assert.ok(daemon.lines.some((l) => l.msg === 'plugin stopped' && l.plugin === 'tcp'));
});

test('an error escaping a plugin after start: logged as fatal, plugins stopped, exit 1', async () => {
  const crasher = join(scratch, 'crasher.mjs');
  writeFileSync(
    crasher,
    "export default { name: 'crasher', kind: 'extension', version: '1.0.0', register() { return { start() { setTimeout(() => { throw new Error('bug in crasher'); }, 200); } }; } };\n",
  );
  const daemon = start(FASTBLOCKD, ['--plugins', `tcp,${crasher}`, '--listen', '127.0.0.1:0']);
  const finished = await daemon.exit;
  assert.is(finished.code, 1);
  const fatal = daemon.lines.find((l) => l.msg === 'unhandled error; stopping');
  assert.ok(fatal, 'fatal line');
  assert.match(JSON.stringify(fatal!.err), /bug in crasher/);
  assert.equal(daemon.lines.filter((l) => l.msg === 'plugin stopped').map((l) => l.plugin), ['tcp']);
});

test('fastblock status against nothing: one line, exit 1; --json gives an error object', async () => {
  const down = await run(FASTBLOCK, ['status', '--addr', '127.0.0.1:1', '--timeout', '300']);
  assert.is(down.code, 1);
  assert.match(oneLine(down.stderr), /^fastblock: no daemon answering at 127\.0\.0\.1:1 within 300 ms/);
  const json = await run(FASTBLOCK, ['status', '--addr', 'nonsense', '--json']);
  assert.is(json.code, 1);
  assert.is((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'INVALID_ARGUMENT');
});

test('bin/ wrappers run the compiled CLI', async () => {
  const root = new URL('../../', import.meta.url).pathname;
  if (!existsSync(join(root, 'dist/cli/fastblockd.js'))) {
    console.log('SKIP bin/ wrappers: dist/ not built (npm test builds it first)');
    return;
  }
  const { spawnSync } = await import('node:child_process');
  const help = spawnSync(process.execPath, [join(root, 'bin/fastblockd.js'), '--help'], { encoding: 'utf8' });
  assert.is(help.status, 0, help.stderr);
  assert.match(help.stdout, /Built-in plugins:/);
  const cli = spawnSync(process.execPath, [join(root, 'bin/fastblock.js'), '--help'], { encoding: 'utf8' });
  assert.is(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /status/);
});

test.run();
