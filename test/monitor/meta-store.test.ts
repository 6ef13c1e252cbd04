// The MetaStore contract, run against both implementations: embedded (a local file) and etcd (a
// real 3-member etcd-server cluster on loopback).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetaEvent, MetaStore } from '../../kernel/contracts/index.js';
import { EmbeddedMetaStore } from '../../services/monitor/store/embedded-store.js';
import { EtcdMetaStore } from '../../services/monitor/store/etcd-store.js';
import { EtcdCluster, etcdAvailable } from './etcd-cluster.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

function contract(name: string, open: () => Promise<MetaStore>): void {
  const t = suite(`MetaStore contract: ${name}`);
  let store: MetaStore;
  const prefix = `/contract-${Date.now()}/`;
  t.before(async () => {
    store = await open();
  });
  t.after(async () => {
    await store.close();
  });

  t('put, get, list in key order', async () => {
    const r = await store.txn([], [
      { type: 'put', key: `${prefix}b`, value: bytes('2') },
      { type: 'put', key: `${prefix}a`, value: bytes('1') },
    ]);
    assert.ok(r.succeeded);
    const a = await store.get(`${prefix}a`);
    assert.is(text(a?.value), '1');
    assert.is(a?.modRevision, r.revision);
    assert.equal((await store.list(prefix)).map((e) => e.key), [`${prefix}a`, `${prefix}b`]);
    assert.is(await store.get(`${prefix}missing`), undefined);
  });

  t('compare on modRevision: all or nothing', async () => {
    const a = (await store.get(`${prefix}a`))!;
    const stale = await store.txn([{ key: `${prefix}a`, modRevision: a.modRevision - 1 }], [{ type: 'put', key: `${prefix}c`, value: bytes('x') }]);
    assert.not.ok(stale.succeeded);
    assert.is(await store.get(`${prefix}c`), undefined);
    const absent = await store.txn([{ key: `${prefix}c`, modRevision: 0 }, { key: `${prefix}a`, modRevision: a.modRevision }], [
      { type: 'put', key: `${prefix}c`, value: bytes('y') },
      { type: 'delete', key: `${prefix}b` },
    ]);
    assert.ok(absent.succeeded);
    assert.is(text((await store.get(`${prefix}c`))?.value), 'y');
    assert.is(await store.get(`${prefix}b`), undefined);
  });

  t('watch delivers changes after a revision, by prefix', async () => {
    const start = (await store.get(`${prefix}a`))!.modRevision;
    const seen: MetaEvent[] = [];
    const stop = store.watch(`${prefix}w/`, start, (events) => seen.push(...events));
    await new Promise((r) => setTimeout(r, 200));
    await store.txn([], [{ type: 'put', key: `${prefix}w/1`, value: bytes('one') }, { type: 'put', key: `${prefix}other`, value: bytes('no') }]);
    await store.txn([], [{ type: 'deletePrefix', prefix: `${prefix}w/` }]);
    const deadline = Date.now() + 5000;
    while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stop();
    assert.equal(seen.map((e) => e.type), ['put', 'delete']);
    assert.is(seen[0].type === 'put' && seen[0].entry.key, `${prefix}w/1`);
  });

  t('campaign makes a leader', async () => {
    const leadership = await store.campaign(`${prefix}election`, 'me');
    assert.ok(leadership.isLeader);
    await leadership.resign();
  });
  t.run();
}

const dir = mkdtempSync(join(tmpdir(), 'fastblock-meta-'));
contract('embedded', () => EmbeddedMetaStore.open(join(dir, 'meta.json')));

if (etcdAvailable()) {
  let cluster: EtcdCluster | undefined;
  const etcd = suite('etcd cluster');
  etcd.before(async () => {
    cluster = await EtcdCluster.start(3);
  });
  etcd('three members answer', () => assert.is(cluster!.endpoints.length, 3));
  etcd.run();
  contract('etcd', async () => {
    while (!cluster) await new Promise((r) => setTimeout(r, 50));
    return new EtcdMetaStore({ endpoints: cluster.endpoints, electionTtlS: 2 });
  });
  const teardown = suite('teardown');
  teardown('stop etcd', async () => {
    try {
      await cluster?.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  teardown.run();
} else {
  rmSync(dir, { recursive: true, force: true });
  console.log('SKIP etcd MetaStore contract: the etcd binary is not installed');
}
