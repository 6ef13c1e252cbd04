import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import { parseAddress } from '../../kernel/address.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { silentLogger } from '../../kernel/logger.js';
import { PluginHost, prepareHost } from '../../kernel/plugin-host.js';
import { fetchStatus, runAdmin } from '../../kernel/rpc/control.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { scratchDir } from './plugin-support.js';

function logSink(): { stream: Writable; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { stream, lines };
}

const fixture = new URL('../fixtures/sample-plugin', import.meta.url).pathname;

test('two daemons in one process, each with its own plugin instances, served over the control RPC', async () => {
  const hosts: PluginHost[] = [];
  for (const greeting of ['hello', 'hej']) {
    const prepared = await prepareHost({
      plugins: ['tcp', fixture],
      env: {},
      overrides: { 'daemon.listen': '127.0.0.1:0', 'daemon.name': `d-${greeting}`, 'sample.greeting': greeting },
      logDestination: logSink().stream,
    });
    hosts.push(await PluginHost.start(prepared));
  }
  const client = new TcpTransport({}, silentLogger());
  try {
    for (const [i, host] of hosts.entries()) {
      const connection = client.connect({ address: parseAddress(host.controlAddress!), shard: 0 });
      const status = await fetchStatus(connection);
      assert.is(status.daemon, i === 0 ? 'd-hello' : 'd-hej');
      assert.equal(status.plugins.map((p) => p.name), ['tcp', 'sample']);
      assert.ok(status.methods.includes('0x0101 fastblock.control.Control/Status'));
      const reply = (await runAdmin(connection, 'sample greet', { who: 'x' })) as { greeting: string };
      assert.is(reply.greeting, i === 0 ? 'hello, x' : 'hej, x');
      // Arguments and results larger than a frame header (64 KiB) travel as the payload.
      const long = 'y'.repeat(200_000);
      assert.is(((await runAdmin(connection, 'sample greet', { who: long })) as { greeting: string }).greeting.length, long.length + (i === 0 ? 7 : 5));
      try {
        await runAdmin(connection, 'sample greet', [] as never);
        assert.unreachable();
      } catch (err) {
        assert.is((err as FastblockError).code, ErrorCode.INVALID_ARGUMENT);
      }
    }
  } finally {
    await client.close();
    for (const host of hosts) await Promise.all([host.stop(), host.stop()]);
  }
});

test('without a transport plugin the daemon runs and says why it does not serve the control RPC', async () => {
  const sink = logSink();
  const host = await PluginHost.start(await prepareHost({ plugins: [fixture], env: {}, logDestination: sink.stream }));
  assert.is(host.controlAddress, undefined);
  assert.ok(sink.lines.some((l) => /no transport plugin loaded/.test(String(l.msg))));
  await host.stop();
});

test('an empty daemon.listen serves nothing; the file section of an absent plugin is reported', async () => {
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const file = join(scratchDir('fastblock-host-'), 'c.json');
  writeFileSync(file, JSON.stringify({ daemon: { listen: '' }, blobstore: { device: '/dev/null' } }));
  const sink = logSink();
  const host = await PluginHost.start(await prepareHost({ plugins: ['tcp'], configFile: file, env: {}, logDestination: sink.stream }));
  assert.is(host.controlAddress, undefined);
  assert.ok(sink.lines.some((l) => l.section === 'blobstore' && /not loaded; ignored/.test(String(l.msg))));
  await host.stop();
});

test.run();
