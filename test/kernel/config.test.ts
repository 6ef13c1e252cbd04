import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { envName, loadConfig } from '../../kernel/config.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { definePlugin } from '../../kernel/plugin.js';
import { scratchDir } from './plugin-support.js';

const dir = scratchDir('fastblock-config-');
const sample = definePlugin({
  name: 'sample',
  kind: 'extension',
  version: '1.0.0',
  configSchema: {
    depth: { doc: 'queue depth', format: 'nat', default: 4 },
    mode: { doc: 'mode', format: ['fast', 'safe'], default: 'safe' },
    peer: { doc: 'peer address', format: 'address', default: '127.0.0.1:1' },
    nested: { retries: { doc: 'retries', format: 'int', default: 1 } },
  },
  register() {},
});

function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

function configError(work: () => unknown): string {
  try {
    work();
  } catch (err) {
    assert.instance(err, FastblockError);
    assert.is((err as FastblockError).code, ErrorCode.CONFIG_INVALID);
    assert.not.match((err as Error).message, /\n/);
    return (err as Error).message;
  }
  assert.unreachable('expected CONFIG_INVALID');
  return '';
}

test('env names are derived from keys', () => {
  assert.is(envName('daemon.startTimeoutMs'), 'FASTBLOCK_DAEMON_START_TIMEOUT_MS');
  assert.is(envName('sample.nested.retries'), 'FASTBLOCK_SAMPLE_NESTED_RETRIES');
});

test('precedence: defaults < file < FASTBLOCK_* env < flags', () => {
  const path = file('p.json', { sample: { depth: 8, mode: 'fast', nested: { retries: 2 } }, daemon: { name: 'from-file' } });
  const defaults = loadConfig({ env: {}, plugins: [sample] });
  assert.is((defaults.values.sample as { depth: number }).depth, 4);
  assert.is(defaults.origin('sample.depth'), 'default');

  const fromFile = loadConfig({ file: path, env: {}, plugins: [sample] });
  assert.equal(fromFile.values.sample, { depth: 8, mode: 'fast', peer: '127.0.0.1:1', nested: { retries: 2 } });
  assert.is(fromFile.values.daemon.name, 'from-file');
  assert.is(fromFile.origin('sample.depth'), path);

  const env = { FASTBLOCK_SAMPLE_DEPTH: '16', FASTBLOCK_SAMPLE_NESTED_RETRIES: '5', FASTBLOCK_TEST_JOBS: '3' };
  const fromEnv = loadConfig({ file: path, env, plugins: [sample] });
  assert.is((fromEnv.values.sample as { depth: number }).depth, 16);
  assert.is((fromEnv.values.sample as { nested: { retries: number } }).nested.retries, 5);
  assert.is(fromEnv.origin('sample.depth'), 'FASTBLOCK_SAMPLE_DEPTH');

  const fromFlags = loadConfig({ file: path, env, overrides: { 'sample.depth': '32', 'log.level': 'debug' }, plugins: [sample] });
  assert.is((fromFlags.values.sample as { depth: number }).depth, 32);
  assert.is(fromFlags.values.log.level, 'debug');
  assert.is((fromFlags.values.sample as { mode: string }).mode, 'fast');
  assert.is(fromFlags.origin('sample.depth'), 'flag');
  assert.equal(JSON.parse(fromFlags.print()).sample.depth, 32);
});

test('sections for plugins that are not loaded are ignored and reported', () => {
  const path = file('roles.json', { sample: { depth: 2 }, blobstore: { device: '/dev/x' } });
  const config = loadConfig({ file: path, env: {}, plugins: [sample] });
  assert.equal(config.ignoredSections, ['blobstore']);
  assert.not.ok('blobstore' in config.values);
});

test('each validation error names the key, the value, its source and what is expected', () => {
  const bad = file('bad.json', { sample: { depth: -3 } });
  assert.match(configError(() => loadConfig({ file: bad, env: {}, plugins: [sample] })), new RegExp(`sample\\.depth = -3 \\(from ${bad.replace(/[.]/g, '\\.')}\\): must be a positive integer`));
  assert.match(
    configError(() => loadConfig({ env: { FASTBLOCK_SAMPLE_MODE: 'turbo' }, plugins: [sample] })),
    /sample\.mode = "turbo" \(from FASTBLOCK_SAMPLE_MODE\): must be one of the possible values: \["fast","safe"\]/,
  );
  assert.match(configError(() => loadConfig({ env: {}, overrides: { 'sample.peer': 'nowhere' }, plugins: [sample] })), /sample\.peer = "nowhere" \(from flag\): must be HOST:PORT/);
  assert.match(configError(() => loadConfig({ env: { FASTBLOCK_DAEMON_START_TIMEOUT_MS: 'soon' } })), /daemon\.startTimeoutMs = "soon" \(from FASTBLOCK_DAEMON_START_TIMEOUT_MS\)/);
  assert.match(configError(() => loadConfig({ env: {}, overrides: { 'log.level': 'loud' } })), /log\.level = "loud".*fatal/);
});

test('unknown keys, a missing file and bad JSON are refused', () => {
  const typo = file('typo.json', { sample: { dpeth: 3 } });
  assert.match(configError(() => loadConfig({ file: typo, env: {}, plugins: [sample] })), /unknown key 'sample\.dpeth' in .*typo\.json/);
  assert.match(configError(() => loadConfig({ env: {}, overrides: { 'sample.dpeth': '3' }, plugins: [sample] })), /unknown key 'sample\.dpeth' \(from a flag\); known keys: .*sample\.depth/);
  assert.match(configError(() => loadConfig({ file: join(dir, 'absent.json'), env: {} })), /absent\.json does not exist/);
  assert.match(configError(() => loadConfig({ file: file('broken.json', '{ "daemon": '), env: {} })), /is not valid JSON/);
  assert.match(configError(() => loadConfig({ file: file('array.json', '[1]'), env: {} })), /must hold a JSON object/);
});

test.run();
