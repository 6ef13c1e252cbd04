import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { createContainer, TOKENS } from '../../kernel/container.js';
import type { StoreFactory } from '../../kernel/contracts/store.js';
import { loadConfig } from '../../kernel/config.js';
import { silentLogger } from '../../kernel/logger.js';
import { loadPlugin } from '../../kernel/plugin-loader.js';
import { KERNEL_VERSION } from '../../kernel/version.js';
import { pattern, rejectsWith, scratchDir } from './devices.js';

const MiB = 1 << 20;

async function factoryFor(overrides: Record<string, string | number>): Promise<StoreFactory> {
  const plugin = await loadPlugin('blobstore');
  const config = loadConfig({ env: {}, overrides, plugins: [plugin.manifest] });
  const container = createContainer();
  await plugin.manifest.register(container, config.values.blobstore as object, { logger: silentLogger(), kernelVersion: KERNEL_VERSION, config: config.values });
  return container.resolve<StoreFactory>(TOKENS.StoreFactory);
}

test('the blobstore plugin registers a StoreFactory configured from its section', async () => {
  const factory = await factoryFor({ 'blobstore.clusterSize': 256 * 1024, 'blobstore.io': 'fs' });
  assert.is(factory.name, 'blobstore');
  const path = join(scratchDir(), 'plugin-shard.img');
  const store = await factory.open({ shard: 0, path, sizeBytes: 32 * MiB, create: true });
  await store.objects.write('1.0', 'o', 100, [pattern(1, 5000)]);
  assert.ok(Buffer.from(await store.objects.read('1.0', 'o', 100, 5000)).equals(pattern(1, 5000)));
  assert.is(store.stats().capacityBytes % (256 * 1024), 0);
  await store.close();
});

test('with a shared device, each shard opens its own region of it', async () => {
  const device = join(scratchDir(), 'plugin-device.img');
  const factory = await factoryFor({ 'blobstore.device': device, 'blobstore.regionBytes': 16 * MiB, 'blobstore.clusterSize': 256 * 1024 });
  const shards = await Promise.all([0, 1].map((shard) => factory.open({ shard, path: 'ignored', sizeBytes: 99 * MiB, create: true })));
  await rejectsWith(factory.open({ shard: 1, path: 'ignored', sizeBytes: 1, create: true }), 'BUSY');
  await Promise.all(shards.map((s) => s.close()));
});

test('bad config values are refused by the schema', async () => {
  const plugin = await loadPlugin('blobstore');
  assert.throws(() => loadConfig({ env: {}, overrides: { 'blobstore.io': 'spdk' }, plugins: [plugin.manifest] }));
});

test('each shard gets a read cache of blobstore.cacheMb (0: none); one past a buffer\'s limit is refused at start', async () => {
  const open = async (factory: StoreFactory, name: string) => factory.open({ shard: 0, path: join(scratchDir(), name), sizeBytes: 32 * MiB, create: true });
  const cached = await open(await factoryFor({ 'blobstore.io': 'fs', 'blobstore.cacheMb': 8 }), 'plugin-cached.img');
  assert.is(cached.stats().readCache?.capacityBytes, 8 * MiB);
  await cached.close();
  const plain = await open(await factoryFor({ 'blobstore.io': 'fs', 'blobstore.cacheMb': 0 }), 'plugin-plain.img');
  assert.is(plain.stats().readCache, undefined);
  await plain.close();
  await rejectsWith(factoryFor({ 'blobstore.cacheMb': 1 << 30 }), 'CONFIG_INVALID');
});

test.run();
