/**
 * The nbd plugin's configuration: export entries "pool/image[:ro][:writethrough|:writeback]"
 * (suffixes in any order, each once; an unknown or repeated one is CONFIG_INVALID, not served as
 * something else), the schema's checks of the cache mode, the write-back directory, the ring
 * size and the write-back hold, and the frontend refusing a bad entry at start with nothing opened.
 */
import convict from 'convict';
import pino from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { BlockVolume, BlockVolumeProvider } from '../../kernel/contracts/block.js';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { NBD_CONFIG_DEFAULTS, nbdConfigSchema, parseExportEntry, type NbdConfig } from '../../plugins/frontend-nbd/config.js';
import { NbdFrontend } from '../../plugins/frontend-nbd/frontend.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';

const test = suite('nbd: config');

test('export entries: read-only, cache mode, both, in either order', () => {
  assert.equal(parseExportEntry('rbd/vm1'), { volume: 'rbd/vm1', readOnly: false, cache: undefined });
  assert.equal(parseExportEntry('rbd/golden:ro'), { volume: 'rbd/golden', readOnly: true, cache: undefined });
  assert.equal(parseExportEntry('rbd/vm1:writeback'), { volume: 'rbd/vm1', readOnly: false, cache: 'writeback' });
  assert.equal(parseExportEntry('rbd/vm1:writethrough'), { volume: 'rbd/vm1', readOnly: false, cache: 'writethrough' });
  assert.equal(parseExportEntry('rbd/vm1:ro:writeback'), { volume: 'rbd/vm1', readOnly: true, cache: 'writeback' });
  assert.equal(parseExportEntry('rbd/vm1:writeback:ro'), { volume: 'rbd/vm1', readOnly: true, cache: 'writeback' });
  assert.equal(parseExportEntry('rbd/my-image_2.raw:ro'), { volume: 'rbd/my-image_2.raw', readOnly: true, cache: undefined });
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
  refused('rbd/vm1:rw', 'unknown suffix ":rw" (allowed: :ro and one of :writethrough, :writeback)');
  refused('rbd/vm1:writearound', 'unknown suffix ":writearound"');
  refused('rbd/vm1:WriteBack', 'unknown suffix ":WriteBack"');
  refused('rbd/vm1:RO', 'unknown suffix ":RO"');
  refused('rbd/vm1:', 'unknown suffix ":"');
  refused('rbd/vm1:ro:ro', 'a repeated suffix ":ro"');
  refused('rbd/vm1:writeback:writethrough', 'a repeated suffix ":writethrough"');
  refused('rbd/vm1:ro:writeback:x', 'unknown suffix ":x"');
  refused(':ro', 'is not "pool/image[:ro][:writethrough|:writeback]"');
  refused('', 'is not');
});

test('schema: defaults, and the cache mode, write-back directory and ring size are checked', () => {
  const load = (values: Partial<NbdConfig>): NbdConfig => {
    const config = convict(nbdConfigSchema);
    config.load(values);
    config.validate({ allowed: 'strict' });
    return config.getProperties();
  };
  assert.equal(load({}), NBD_CONFIG_DEFAULTS);
  assert.is(NBD_CONFIG_DEFAULTS.cache, 'writethrough');
  assert.is(NBD_CONFIG_DEFAULTS.writeBackDir, '/dev/shm/fastblock-write-back', 'the vhost plugin\'s directory: one log per image on a host');
  assert.is(NBD_CONFIG_DEFAULTS.writeBackMiB, 64);
  assert.is(NBD_CONFIG_DEFAULTS.readCacheMiB, 64);
  assert.is(load({ readCacheMiB: 0 }).readCacheMiB, 0, '0: no read cache');
  assert.is(NBD_CONFIG_DEFAULTS.writeBackHoldMs, 500);
  assert.is(load({ writeBackHoldMs: 0 }).writeBackHoldMs, 0, '0: a write goes back at once');
  assert.is(load({ writeBackHoldMs: 10_000 }).writeBackHoldMs, 10_000);
  const custom = load({ cache: 'writeback', writeBackMiB: 4, writeBackDir: '/tmp/wb', exports: ['rbd/a:writeback', 'rbd/b:ro'] });
  assert.equal([custom.cache, custom.writeBackMiB, custom.writeBackDir], ['writeback', 4, '/tmp/wb']);
  const bad = (values: Record<string, unknown>, what: string): void => {
    assert.throws(() => load(values as Partial<NbdConfig>), (err: Error) => err.message.includes(what), JSON.stringify(values));
  };
  bad({ cache: 'writearound' }, 'must be one of writethrough, writeback');
  bad({ cache: 'none' }, 'must be one of writethrough, writeback');
  bad({ writeBackMiB: 3 }, 'must be an integer in [4, 4096]');
  bad({ writeBackMiB: 8.5 }, 'must be an integer');
  bad({ writeBackMiB: 4097 }, 'must be an integer');
  bad({ writeBackDir: '' }, 'must be a non-empty path');
  bad({ readCacheMiB: -1 }, 'must be an integer in [0, 4096]');
  bad({ readCacheMiB: 1.5 }, 'must be an integer');
  bad({ readCacheMiB: 4097 }, 'must be an integer');
  bad({ writeBackHoldMs: -1 }, 'must be an integer in [0, 10000] (ms');
  bad({ writeBackHoldMs: 2.5 }, 'must be an integer in [0, 10000]');
  bad({ writeBackHoldMs: 10_001 }, 'must be an integer in [0, 10000]');
  bad({ writeBackHoldMs: 'soon' }, 'must be an integer in [0, 10000]');
});

test('the frontend refuses a bad entry at start before opening anything, and a bad cache, ring size or hold when built', async () => {
  const memory = new MemoryVolumeProvider();
  memory.create('pool/a', 1024 * 1024);
  const opened: string[] = [];
  const provider: BlockVolumeProvider = {
    open: (name): Promise<BlockVolume> => (opened.push(name), memory.open(name)),
    list: () => memory.list(),
  };
  const log = pino({ level: 'silent' });
  const frontend = new NbdFrontend(provider, { ...NBD_CONFIG_DEFAULTS, port: 0, exports: ['pool/a', 'pool/a:rw'] }, log);
  try {
    await frontend.start();
    assert.unreachable('an unknown suffix was accepted');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.CONFIG_INVALID), String(err));
    assert.match((err as Error).message, 'pool/a:rw');
  }
  assert.equal(opened, [], 'every entry is checked before the first export opens');
  assert.equal(frontend.listExports(), []);

  const built = (config: Partial<NbdConfig>): unknown => {
    try {
      return new NbdFrontend(provider, { ...NBD_CONFIG_DEFAULTS, ...config }, log);
    } catch (err) {
      return err;
    }
  };
  assert.ok(isFastblockError(built({ cache: 'writearound' as NbdConfig['cache'] }), ErrorCode.CONFIG_INVALID));
  assert.ok(isFastblockError(built({ writeBackMiB: 2 }), ErrorCode.CONFIG_INVALID));
  for (const writeBackHoldMs of [-1, 0.5, 10_001, Number.NaN]) {
    const err = built({ writeBackHoldMs });
    assert.ok(isFastblockError(err, ErrorCode.CONFIG_INVALID), `writeBackHoldMs ${writeBackHoldMs}: ${String(err)}`);
    assert.match((err as Error).message, 'nbd.writeBackHoldMs must be an integer in [0, 10000]');
  }
  assert.ok(built({ cache: 'writeback', writeBackMiB: 4 }) instanceof NbdFrontend);
});

test.run();
