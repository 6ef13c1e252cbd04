import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createContainer } from '../../kernel/container.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { silentLogger } from '../../kernel/logger.js';
import { loadPlugins } from '../../kernel/plugin-loader.js';
import { orderPlugins } from '../../kernel/plugin-graph.js';
import { PluginLifecycle } from '../../kernel/plugin-lifecycle.js';
import { scratchDir, takeEvents, writePlugin } from './plugin-support.js';

const dir = scratchDir();
const store = writePlugin(dir, { name: 'store', kind: 'store', provides: ['StoreFactory'] });
const service = writePlugin(dir, { name: 'service', kind: 'service', provides: ['MetaStore'], requires: ['StoreFactory'] });
const frontend = writePlugin(dir, { name: 'frontend', kind: 'frontend', provides: ['Frontend'], requires: ['MetaStore', 'StoreFactory'] });
const throws = writePlugin(dir, { name: 'throws', requires: ['MetaStore'], start: "throw new Error('disk /dev/nope is missing');" });
const hangs = writePlugin(dir, { name: 'hangs', requires: ['MetaStore'], start: 'await new Promise(() => {});' });
const badStop = writePlugin(dir, { name: 'bad-stop', provides: ['LeaderPolicy'], stop: "throw new Error('stuck');" });

async function lifecycle(names: string[], startTimeoutMs = 2000): Promise<PluginLifecycle> {
  const ordered = orderPlugins(await loadPlugins(names));
  const life = new PluginLifecycle(createContainer(), ordered, { logger: silentLogger(), startTimeoutMs, stopTimeoutMs: 1000 });
  await life.register({});
  return life;
}

test('register and start in dependency order, stop in reverse', async () => {
  takeEvents();
  const life = await lifecycle([frontend, service, store]);
  await life.start();
  assert.equal(life.running, ['store', 'service', 'frontend']);
  await life.stop();
  await life.stop();
  assert.equal(takeEvents(), [
    'register store', 'register service', 'register frontend',
    'start store', 'start service', 'start frontend',
    'stop frontend', 'stop service', 'stop store',
  ]);
  assert.equal(life.running, []);
});

test('a start that throws stops those already started, in reverse order', async () => {
  takeEvents();
  const life = await lifecycle([store, service, throws, frontend]);
  try {
    await life.start();
    assert.unreachable();
  } catch (err) {
    assert.instance(err, FastblockError);
    const e = err as FastblockError;
    assert.is(e.code, ErrorCode.PLUGIN);
    assert.is(e.message, "plugin 'throws': start() failed: disk /dev/nope is missing; stopped service, store; fix the cause above and start the daemon again");
  }
  assert.equal(takeEvents().filter((e) => !e.startsWith('register')), ['start store', 'start service', 'start throws', 'stop service', 'stop store']);
  assert.equal(life.running, []);
});

test('a start that overruns its timeout is a one-line error and rolls back', async () => {
  takeEvents();
  const life = await lifecycle([store, service, hangs], 150);
  const t0 = Date.now();
  try {
    await life.start();
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /^plugin 'hangs': start\(\) did not finish within 150 ms; stopped service, store; .*daemon\.startTimeoutMs$/);
  }
  assert.ok(Date.now() - t0 < 1500);
  assert.equal(takeEvents().filter((e) => e.startsWith('stop')), ['stop service', 'stop store']);
});

test('a stop that throws does not keep the others from stopping', async () => {
  takeEvents();
  const life = await lifecycle([store, badStop, service]);
  await life.start();
  await life.stop();
  assert.equal(takeEvents().filter((e) => e.startsWith('stop')), ['stop service', 'stop bad-stop', 'stop store']);
});

test('each plugin receives its own config section', async () => {
  const seen: unknown[] = [];
  const life = new PluginLifecycle(
    createContainer(),
    [{ requested: 'inline', origin: 'path', file: 'inline', manifest: { name: 'inline', kind: 'extension', version: '1.0.0', register: (_c, config) => void seen.push(config) } }],
    { logger: silentLogger(), startTimeoutMs: 1000, stopTimeoutMs: 1000 },
  );
  await life.register({ inline: { depth: 3 }, other: { depth: 9 } });
  await life.start();
  await life.stop();
  assert.equal(seen, [{ depth: 3 }]);
});

test.run();
