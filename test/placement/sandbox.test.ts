// The sandbox refuses each kind of bad policy with its reason and keeps the policy in force.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { PolicyHost } from '../../plugins/placement/policy-host.js';
import { fixture, type FixtureName } from './fixtures.js';
import { makeOsds, makePool } from './cluster.js';

const host = new PolicyHost({ timeoutMs: 1500, memoryPages: 256 });
const osds = makeOsds(3, 3, 2);
const pool = makePool(128);
const initial = await host.placement.place({ pool, osds, previous: [] });
const view = { pools: [pool], osds, current: () => initial };
const inForce = host.placement.module.sha256;

async function refusal(name: FixtureName | Uint8Array): Promise<string> {
  const bytes = typeof name === 'string' ? await fixture(name) : name;
  const label = typeof name === 'string' ? name : `${bytes.length} bytes`;
  try {
    const candidate = host.load('placement', 'candidate', 2, bytes);
    await host.trial(candidate, view);
    host.activate(candidate);
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.POLICY_REJECTED), `expected POLICY_REJECTED, got ${String(err)}`);
    return (err as Error).message;
  }
  assert.unreachable(`${label} was accepted`);
  return '';
}

async function stillInForce(): Promise<void> {
  assert.is(host.placement.module.sha256, inForce);
  const again = await host.placement.place({ pool, osds, previous: initial });
  assert.equal(again, initial);
}

test('an infinite loop is terminated at the time limit', async () => {
  const bytes = await fixture('loop');
  const started = Date.now();
  assert.match(await refusal(bytes), /time limit of 1500 ms/);
  // Terminated, not hung: the bound is generous because worker start-up is timed apart and slow on a loaded host.
  assert.ok(Date.now() - started < 30_000);
  await stillInForce();
});

test('a memory bomb hits the cap', async () => {
  assert.match(await refusal('memoryBomb'), /memory cap of 16 MiB/);
  await stillInForce();
});

test('a trap is reported as a trap', async () => {
  assert.match(await refusal('trap'), /trapped: unreachable/);
  await stillInForce();
});

test('an invalid map is refused by validation', async () => {
  assert.match(await refusal('invalidMap'), /PG 0 holds OSD 0 twice/);
  await stillInForce();
});

test('a wasm module that is not a policy, and bytes that are not wasm', async () => {
  assert.match(await refusal('notAPolicy'), /does not export memory memory|does not export function fastblock_policy_abi/);
  assert.match(await refusal(new TextEncoder().encode('#!/bin/sh\necho hi\n')), /not a valid WebAssembly module/);
  await stillInForce();
});

test('a module importing more than abort is refused before it runs', async () => {
  // (module (import "wasi_snapshot_preview1" "fd_write" (func)) (memory 1) (export "memory" (memory 0)))
  const bytes = Uint8Array.from([
    0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 2, 35, 1, 22, 119, 97, 115, 105, 95, 115, 110, 97, 112, 115, 104, 111, 116, 95, 112,
    114, 101, 118, 105, 101, 119, 49, 8, 102, 100, 95, 119, 114, 105, 116, 101, 0, 0, 5, 3, 1, 0, 1, 7, 10, 1, 6, 109, 101, 109, 111, 114,
    121, 2, 0,
  ]);
  assert.match(await refusal(bytes), /imports wasi_snapshot_preview1\.fd_write/);
});

test('a valid candidate passes its trial with a dry-run report, then activates', async () => {
  const candidate = host.load('placement', 'forgetful', 2, await fixture('forgetful'));
  const report = await host.trial(candidate, view);
  assert.is(report.pools.length, 1);
  assert.ok(report.pgsMoved > 0, 'a policy that ignores the previous map moves PGs');
  assert.ok(report.pools[0].after.maxOverMean <= 1.1);
  host.activate(candidate);
  assert.is(host.placement.name, 'forgetful');
});

test.run();
