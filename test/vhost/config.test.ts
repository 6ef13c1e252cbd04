// The vhost plugin's configuration: controller entries "pool/image=/path/sock[:queues[:cache]]"
// (an unknown cache mode is refused, not served as something else) and the schema's checks of the
// cache mode, the write-back directory, the ring size and the write-back hold, which the frontend
// also refuses when built.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import convict from 'convict';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import pino from 'pino';
import { parseControllerEntry, VHOST_CONFIG_DEFAULTS, vhostConfigSchema, type VhostConfig } from '../../plugins/frontend-vhost/config.js';
import { VhostFrontend } from '../../plugins/frontend-vhost/frontend.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';

test('controller entries: queues and cache mode are optional, cache needs the queues field', () => {
  assert.equal(parseControllerEntry('rbd/vm1=/run/vm1.sock', 2), { volume: 'rbd/vm1', socket: '/run/vm1.sock', queues: 2, cache: undefined });
  assert.equal(parseControllerEntry('rbd/vm1=/run/vm1.sock:4', 2), { volume: 'rbd/vm1', socket: '/run/vm1.sock', queues: 4, cache: undefined });
  assert.equal(parseControllerEntry('rbd/vm1=/run/vm1.sock:2:writeback', 1), { volume: 'rbd/vm1', socket: '/run/vm1.sock', queues: 2, cache: 'writeback' });
  assert.equal(parseControllerEntry('rbd/vm1=/run/vm1.sock:1:writethrough', 2), { volume: 'rbd/vm1', socket: '/run/vm1.sock', queues: 1, cache: 'writethrough' });
  assert.equal(parseControllerEntry('rbd/vm1=/run/vm1.sock::writeback', 3), { volume: 'rbd/vm1', socket: '/run/vm1.sock', queues: 3, cache: 'writeback' });
});

test('controller entries: a bad cache mode or a malformed entry is CONFIG_INVALID', () => {
  const refused = (entry: string, what: string | RegExp): void => {
    try {
      parseControllerEntry(entry, 2);
      assert.unreachable(`${entry} was accepted`);
    } catch (err) {
      assert.ok(isFastblockError(err, ErrorCode.CONFIG_INVALID), `${entry}: ${String(err)}`);
      assert.match((err as Error).message, what);
    }
  };
  refused('rbd/vm1=/run/vm1.sock:2:writearound', 'cache mode "writearound" is not one of writethrough, writeback');
  refused('rbd/vm1=/run/vm1.sock:2:WriteBack', 'cache mode "WriteBack"');
  refused('rbd/vm1=/run/vm1.sock:2:', 'cache mode ""');
  refused('rbd/vm1=/run/vm1.sock:writeback', 'is not "pool/image=/path/sock[:queues[:cache]]"');
  refused('rbd/vm1=/run/vm1.sock:2:writeback:x', 'is not');
  refused('rbd/vm1=/run/vm1.sock:', 'is not');
  refused('/run/vm1.sock', 'is not');
});

test('schema: defaults, and the cache mode, write-back directory and ring size are checked', () => {
  const load = (values: Partial<VhostConfig>): VhostConfig => {
    const config = convict(vhostConfigSchema);
    config.load(values);
    config.validate({ allowed: 'strict' });
    return config.getProperties();
  };
  assert.equal(load({}), VHOST_CONFIG_DEFAULTS);
  assert.equal(VHOST_CONFIG_DEFAULTS.cache, 'writethrough');
  assert.equal(VHOST_CONFIG_DEFAULTS.writeBackDir, '/dev/shm/fastblock-write-back');
  assert.equal(VHOST_CONFIG_DEFAULTS.writeBackMiB, 64);
  assert.equal(VHOST_CONFIG_DEFAULTS.readCacheMiB, 64);
  assert.is(load({ readCacheMiB: 0 }).readCacheMiB, 0, '0: no read cache');
  assert.equal(VHOST_CONFIG_DEFAULTS.writeBackHoldMs, 500);
  assert.is(load({ writeBackHoldMs: 0 }).writeBackHoldMs, 0, '0: a write goes back at once');
  assert.is(load({ writeBackHoldMs: 10_000 }).writeBackHoldMs, 10_000);
  assert.is(load({ cache: 'writeback', writeBackMiB: 4, writeBackDir: '/tmp/wb' }).cache, 'writeback');
  const bad = (values: Record<string, unknown>, what: string): void => {
    assert.throws(() => load(values as Partial<VhostConfig>), (err: Error) => err.message.includes(what), JSON.stringify(values));
  };
  bad({ cache: 'writearound' }, 'must be one of writethrough, writeback');
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

test('the frontend refuses a bad write-back hold when built', () => {
  const provider = new MemoryVolumeProvider();
  for (const writeBackHoldMs of [-1, 0.5, 10_001, Number.NaN]) {
    try {
      new VhostFrontend(provider, { ...VHOST_CONFIG_DEFAULTS, writeBackHoldMs }, pino({ level: 'silent' }));
      assert.unreachable(`writeBackHoldMs ${writeBackHoldMs} was accepted`);
    } catch (err) {
      assert.ok(isFastblockError(err, ErrorCode.CONFIG_INVALID), `writeBackHoldMs ${writeBackHoldMs}: ${String(err)}`);
      assert.match((err as Error).message, 'vhost.writeBackHoldMs must be an integer in [0, 10000]');
    }
  }
});

test.run();
