import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FaultBdev } from '../../plugins/store-blobstore/bdev/fault-bdev.js';
import { MemoryBdev } from '../../plugins/store-blobstore/bdev/memory-bdev.js';
import { BlobShardStore } from '../../plugins/store-blobstore/shard-store.js';
import { type DeviceKind, type TestDevice, deviceKinds, makeDevice, pattern } from './devices.js';

const MiB = 1 << 20;
const CLUSTER = 64 * 1024;
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

const open = (dev: TestDevice): Promise<BlobShardStore> => BlobShardStore.openOn(dev.open(), 0, { create: true, clusterSize: CLUSTER });

function suiteFor(kind: DeviceKind): void {
  const test = suite(`kv_store on ${kind}`);

  test('set, delete, keys by prefix, flush, reopen; growth past a cluster', async () => {
    const dev = makeDevice(kind, 16 * MiB);
    let store = await open(dev);
    store.kv.set('raft/1.0', text('term=3'));
    store.kv.set('raft/1.1', text('term=4'));
    store.kv.set('pg/1.0', text('meta'));
    store.kv.delete('raft/1.1');
    assert.equal(store.kv.keys('raft/'), ['raft/1.0']);
    await store.kv.flush();
    store.kv.set('unflushed', text('x'));
    store = await open(dev);
    assert.is(str(store.kv.get('raft/1.0')), 'term=3');
    assert.is(store.kv.get('unflushed'), undefined);
    assert.equal(store.kv.keys(), ['pg/1.0', 'raft/1.0']);
    for (let i = 0; i < 50; i++) store.kv.set(`big/${i}`, pattern(i, 3000));
    await store.kv.flush();
    await store.kv.flush();
    store = await open(dev);
    assert.ok(Buffer.from(store.kv.get('big/49')!).equals(pattern(49, 3000)));
    assert.is(store.kv.keys('big/').length, 50);
    await store.close();
    dev.destroy();
  });

  test.run();
}

const torn = suite('kv_store torn flush');
torn('a flush cut at any point leaves the previous state or the new one, never a mix', async () => {
  const outcomes = { old: 0, fresh: 0 };
  for (let crashAt = 1; crashAt < 12; crashAt++) {
    for (const tear of [false, true]) {
      const medium = new MemoryBdev(8 * MiB);
      let store = await BlobShardStore.openOn(new FaultBdev(medium), 0, { create: true, clusterSize: CLUSTER });
      for (let i = 0; i < 20; i++) store.kv.set(`k${i}`, text(`old${i}`));
      await store.kv.flush();
      await store.close();
      let r = 0;
      const fault = new FaultBdev(medium.reopen(), { crashAtOp: crashAt, tear, random: () => ((r = (r * 48271 + 11) % 2147483647) / 2147483647) });
      store = await BlobShardStore.openOn(fault, 0, { create: true }).catch(() => undefined as unknown as BlobShardStore);
      if (store !== undefined && !fault.crashed) {
        for (let i = 0; i < 20; i++) store.kv.set(`k${i}`, text(`new${i}`.repeat(200)));
        await store.kv.flush().catch(() => undefined);
      }
      fault.crash();
      store = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: true });
      const values = store.kv.keys().map((k) => str(store.kv.get(k))!);
      assert.is(values.length, 20);
      const old = values.every((v, i) => v === `old${store.kv.keys()[i].slice(1)}`);
      const fresh = values.every((v, i) => v === `new${store.kv.keys()[i].slice(1)}`.repeat(200));
      assert.ok(old || fresh, `crash at op ${crashAt} tear=${tear}: mixed state`);
      outcomes[old ? 'old' : 'fresh']++;
    }
  }
  assert.ok(outcomes.old > 0 && outcomes.fresh > 0, `crash points cover both outcomes: ${JSON.stringify(outcomes)}`);
});
torn.run();

for (const kind of deviceKinds()) suiteFor(kind);
