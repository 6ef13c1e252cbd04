import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { loadPlugin, loadPlugins } from '../../kernel/plugin-loader.js';
import { orderPlugins } from '../../kernel/plugin-graph.js';
import { scratchDir, writePlugin } from './plugin-support.js';

const dir = scratchDir();

async function rejects(work: () => Promise<unknown>, pattern: RegExp): Promise<FastblockError> {
  try {
    await work();
  } catch (err) {
    assert.instance(err, FastblockError);
    const e = err as FastblockError;
    assert.is(e.code, ErrorCode.PLUGIN);
    assert.not.match(e.message, /\n/, 'one line');
    assert.match(e.message, pattern);
    return e;
  }
  assert.unreachable('expected a plugin error');
  throw new Error('unreachable');
}

test('built-in short names resolve to plugins/*', async () => {
  const tcp = await loadPlugin('tcp');
  assert.is(tcp.origin, 'built-in');
  assert.is(tcp.manifest.name, 'tcp');
  assert.equal(tcp.manifest.provides, ['Transport']);
  assert.match(tcp.file, /plugins\/transport-tcp\/plugin\.(ts|js)$/);
});

test('a path resolves to a file, or to a folder holding plugin.js', async () => {
  const file = writePlugin(dir, { name: 'by-file' });
  assert.is((await loadPlugin(file)).manifest.name, 'by-file');
  writePlugin(dir, { name: 'by-folder' }, 'folder/plugin.js');
  const viaFolder = await loadPlugin(join(dir, 'folder'));
  assert.is(viaFolder.manifest.name, 'by-folder');
  assert.is(viaFolder.origin, 'path');
});

test('an npm package name resolves from the search folders', async () => {
  const { mkdirSync, symlinkSync } = await import('node:fs');
  const project = scratchDir('fastblock-project-');
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(join(process.cwd(), 'test/fixtures/sample-plugin'), join(project, 'node_modules', 'fastblock-plugin-sample'));
  const sample = await loadPlugin('fastblock-plugin-sample', { searchFrom: [project] });
  assert.is(sample.origin, 'package');
  assert.is(sample.manifest.name, 'sample');
  assert.is(sample.manifest.version, '1.2.0');
});

test('unknown plugin: names it and how to fix it', async () => {
  const e = await rejects(() => loadPlugin('no-such-plugin-xyz'), /plugin 'no-such-plugin-xyz': unknown plugin.*npm install no-such-plugin-xyz/);
  assert.is(e.context.plugin, 'no-such-plugin-xyz');
  await rejects(() => loadPlugin('./missing/dir'), /unknown plugin/);
  await rejects(() => loadPlugin('Not A Name!'), /unknown plugin/);
});

test('a package that is not a plugin', async () => {
  const notPlugin = join(dir, 'not-plugin.mjs');
  writeFileSync(notPlugin, 'export default { hello: 1 };\n');
  await rejects(() => loadPlugin(notPlugin), /not a fastblock plugin \(default export has no register\(\) function\).*PluginManifest/);
  const noDefault = join(dir, 'no-default.mjs');
  writeFileSync(noDefault, 'export const x = 1;\n');
  await rejects(() => loadPlugin(noDefault), /no default export/);
  const badKind = join(dir, 'bad-kind.mjs');
  writeFileSync(badKind, "export default { name: 'k', kind: 'magic', version: '1.0.0', register() {} };\n");
  await rejects(() => loadPlugin(badKind), /kind "magic" is not one of/);
  const badContract = join(dir, 'bad-contract.mjs');
  writeFileSync(badContract, "export default { name: 'c', kind: 'store', version: '1.0.0', provides: ['Teleporter'], register() {} };\n");
  await rejects(() => loadPlugin(badContract), /provides names "Teleporter", not a contract/);
  const broken = join(dir, 'broken.mjs');
  writeFileSync(broken, 'export default {;\n');
  await rejects(() => loadPlugin(broken), /failed to load/);
});

test('a kernel range this kernel does not satisfy', async () => {
  const file = writePlugin(dir, { name: 'future', version: '3.0.0', kernel: '>=5.0.0' });
  await rejects(() => loadPlugin(file), /plugin 'future': version 3\.0\.0 needs kernel >=5\.0\.0 but this kernel is \d+\.\d+\.\d+; install a release/);
  assert.is((await loadPlugin(file, { kernelVersion: '5.1.0' })).manifest.name, 'future');
});

test('two plugins providing the same single contract (tcp + rdma)', async () => {
  const plugins = await loadPlugins(['tcp', 'rdma']);
  try {
    orderPlugins(plugins);
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /plugin 'rdma': provides Transport, which plugin 'tcp' already provides and only one may; load either 'tcp' or 'rdma', not both/);
  }
});

test('rdma refuses to register, in one line, when the host has no RDMA device', async () => {
  const { createContainer } = await import('../../kernel/container.js');
  const { PluginLifecycle } = await import('../../kernel/plugin-lifecycle.js');
  const { silentLogger } = await import('../../kernel/logger.js');
  const { rdmaDevices } = await import('../../plugins/transport-rdma/rdma-devices.js');
  const life = new PluginLifecycle(createContainer(), await loadPlugins(['rdma']), { logger: silentLogger(), startTimeoutMs: 1000, stopTimeoutMs: 1000 });
  const expected = rdmaDevices().length === 0 ? /^plugin 'rdma': no RDMA device under \/sys\/class\/infiniband; use --plugins tcp on this host$/ : /^plugin 'rdma': .*use --plugins tcp$/;
  await rejects(() => life.register({ rdma: { device: '' } }), expected);
});

test('a missing requirement (a frontend with no transport)', async () => {
  const frontend = writePlugin(dir, { name: 'front', kind: 'frontend', provides: ['Frontend'], requires: ['Transport'] });
  try {
    orderPlugins(await loadPlugins([frontend]));
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /plugin 'front': requires Transport, which no loaded plugin provides; add a plugin that provides Transport/);
  }
});

test('dependency order follows requires, ties keep the given order; duplicates and cycles are refused', async () => {
  const a = writePlugin(dir, { name: 'a', requires: ['MetaStore'] });
  const b = writePlugin(dir, { name: 'b', provides: ['MetaStore'], requires: ['Transport'] });
  const c = writePlugin(dir, { name: 'c' });
  const ordered = orderPlugins(await loadPlugins([a, c, b, 'tcp']));
  assert.equal(ordered.map((p) => p.manifest.name), ['tcp', 'b', 'a', 'c']);
  assert.throws(() => orderPlugins([ordered[0]!, ordered[0]!]), /loaded twice/);
  const x = writePlugin(dir, { name: 'x', provides: ['PlacementPolicy'], requires: ['LeaderPolicy'] });
  const y = writePlugin(dir, { name: 'y', provides: ['LeaderPolicy'], requires: ['PlacementPolicy'] });
  try {
    orderPlugins(await loadPlugins([x, y]));
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /dependency cycle x -> y -> x/);
  }
});

test.run();
