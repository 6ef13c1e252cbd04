/**
 * The nvmf plugin's configuration: export entries "pool/image[:writethrough|:writeback][=NQN]"
 * (existing forms unchanged; an unknown or repeated suffix is CONFIG_INVALID, not served as
 * something else), the schema's checks of the cache mode, the write-back directory, the ring
 * size and the write-back hold, their mapping onto the target's options, the target refusing bad ones, and createExport's
 * cache option.
 */
import convict from 'convict';
import pino from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { nvmfConfigSchema, parseExportEntry, targetOptions, type NvmfConfig } from '../../plugins/frontend-nvmf/config.js';
import { NvmfTarget } from '../../plugins/frontend-nvmf/target.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';

const test = suite('nvmf: config');

const MiB = 1024 * 1024;

test('export entries: the existing forms, and a cache mode on the volume', () => {
  assert.equal(parseExportEntry('rbd/vm1'), { volume: 'rbd/vm1' });
  assert.equal(parseExportEntry('rbd/vm1=nqn.2024-01.io.example:vm1'), { volume: 'rbd/vm1', nqn: 'nqn.2024-01.io.example:vm1' });
  assert.equal(parseExportEntry('rbd/vm1:writeback'), { volume: 'rbd/vm1', cache: 'writeback' });
  assert.equal(parseExportEntry('rbd/vm1:writethrough'), { volume: 'rbd/vm1', cache: 'writethrough' });
  assert.equal(parseExportEntry('rbd/vm1:writeback=nqn.2024-01.io.example:vm1'), { volume: 'rbd/vm1', nqn: 'nqn.2024-01.io.example:vm1', cache: 'writeback' });
  // An NQN ending like a mode is still an NQN: the suffix belongs to the volume.
  assert.equal(parseExportEntry('rbd/vm1=nqn.2024-01.io.example:writeback'), { volume: 'rbd/vm1', nqn: 'nqn.2024-01.io.example:writeback' });
  assert.equal(parseExportEntry('rbd/my-image_2.raw:writeback'), { volume: 'rbd/my-image_2.raw', cache: 'writeback' });
});

test('export entries: an unknown, repeated or empty suffix, or no volume, is CONFIG_INVALID', () => {
  const refused = (entry: string, what: string): void => {
    try {
      parseExportEntry(entry);
      assert.unreachable(`${entry} was accepted`);
    } catch (err) {
      assert.ok(isFastblockError(err, ErrorCode.CONFIG_INVALID), `${entry}: ${String(err)}`);
      assert.match((err as Error).message, what);
    }
  };
  refused('rbd/vm1:writearound', 'unknown suffix ":writearound" (allowed: one of :writethrough, :writeback)');
  refused('rbd/vm1:WriteBack', 'unknown suffix ":WriteBack"');
  refused('rbd/vm1:ro', 'unknown suffix ":ro"');
  refused('rbd/vm1:', 'unknown suffix ":"');
  refused('rbd/vm1:writeback:writethrough', 'a repeated cache mode ":writethrough"');
  refused('rbd/vm1:writeback:writeback', 'a repeated cache mode ":writeback"');
  refused(':writeback', 'is not "pool/image[:writethrough|:writeback][=NQN]"');
  refused('rbd/vm1 x', 'is not');
  refused('', 'is not');
});

test('schema: defaults, the checks of cache, writeBackDir, writeBackMiB and writeBackHoldMs, and the target options', () => {
  const load = (values: Partial<NvmfConfig>): NvmfConfig => {
    const config = convict(nvmfConfigSchema);
    config.load(values);
    config.validate({ allowed: 'strict' });
    return config.getProperties();
  };
  const defaults = load({});
  assert.is(defaults.cache, 'writethrough');
  assert.is(defaults.writeBackDir, '/dev/shm/fastblock-write-back', 'the vhost and nbd plugins\' directory: one log per image on a host');
  assert.is(defaults.writeBackMiB, 64);
  const options = targetOptions(defaults);
  assert.equal([options.cache, options.writeBackDir, options.writeBackBytes], ['writethrough', '/dev/shm/fastblock-write-back', 64 * MiB]);
  const custom = load({ cache: 'writeback', writeBackMiB: 4, writeBackDir: '/tmp/wb', exports: ['rbd/a:writeback', 'rbd/b=nqn.2024-01.x:b'] });
  assert.equal([custom.cache, custom.writeBackMiB, custom.writeBackDir], ['writeback', 4, '/tmp/wb']);
  assert.is(targetOptions(custom).writeBackBytes, 4 * MiB);
  assert.is(defaults.readCacheMiB, 64);
  assert.is(targetOptions(load({ readCacheMiB: 16 })).readCacheBytes, 16 * MiB);
  assert.is(defaults.writeBackHoldMs, 500);
  assert.is(options.writeBackHoldMs, 500);
  assert.is(targetOptions(load({ writeBackHoldMs: 0 })).writeBackHoldMs, 0, '0: a write goes back at once');
  assert.is(targetOptions(load({ writeBackHoldMs: 10_000 })).writeBackHoldMs, 10_000);
  const bad = (values: Record<string, unknown>, what: string): void => {
    assert.throws(() => load(values as Partial<NvmfConfig>), (err: Error) => err.message.includes(what), JSON.stringify(values));
  };
  bad({ cache: 'writearound' }, 'must be one of writethrough, writeback');
  bad({ cache: 'none' }, 'must be one of writethrough, writeback');
  bad({ writeBackMiB: 3 }, 'must be an integer in [4, 4096]');
  bad({ readCacheMiB: -1 }, 'must be an integer in [0, 4096]');
  bad({ readCacheMiB: 1.5 }, 'must be an integer');
  bad({ readCacheMiB: 4097 }, 'must be an integer');
  bad({ writeBackMiB: 8.5 }, 'must be an integer');
  bad({ writeBackMiB: 4097 }, 'must be an integer');
  bad({ writeBackDir: '' }, 'must be a non-empty path');
  bad({ writeBackHoldMs: -1 }, 'must be an integer in [0, 10000] (ms');
  bad({ writeBackHoldMs: 2.5 }, 'must be an integer in [0, 10000]');
  bad({ writeBackHoldMs: 10_001 }, 'must be an integer in [0, 10000]');
  bad({ writeBackHoldMs: 'soon' }, 'must be an integer in [0, 10000]');
});

test('the target refuses a bad cache, ring size or hold when built; createExport a bad cache option', async () => {
  const provider = new MemoryVolumeProvider(8 * MiB);
  provider.create('rbd/a');
  const log = pino({ level: 'silent' });
  const built = (options: Record<string, unknown>): unknown => {
    try {
      return new NvmfTarget(provider, log, { port: 0, ...options });
    } catch (err) {
      return err;
    }
  };
  assert.ok(isFastblockError(built({ cache: 'writearound' }), ErrorCode.CONFIG_INVALID));
  assert.ok(isFastblockError(built({ writeBackBytes: 2 * MiB }), ErrorCode.CONFIG_INVALID));
  assert.ok(isFastblockError(built({ writeBackDir: '' }), ErrorCode.CONFIG_INVALID));
  for (const writeBackHoldMs of [-1, 0.5, 10_001, Number.NaN]) {
    const err = built({ writeBackHoldMs });
    assert.ok(isFastblockError(err, ErrorCode.CONFIG_INVALID), `writeBackHoldMs ${writeBackHoldMs}: ${String(err)}`);
    assert.match((err as Error).message, 'nvmf: writeBackHoldMs must be an integer in [0, 10000]');
  }
  const target = built({ cache: 'writeback', writeBackBytes: 4 * MiB });
  assert.ok(target instanceof NvmfTarget);
  await target.start();
  try {
    await target.createExport({ volume: 'rbd/a', options: { cache: 'none' } });
    assert.unreachable('a bad cache mode was accepted');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.INVALID_ARGUMENT), String(err));
    assert.match((err as Error).message, 'cache must be one of writethrough, writeback');
  }
  assert.equal(target.listExports(), []);
  await target.stop();
});

test.run();
