// Map distribution and the OSD lifecycle over real TCP: simulated OSDs boot, heartbeat, subscribe;
// subscribers get the full map first, then each epoch as a delta; a subscriber that stops
// acknowledging is cut off and gets the full map again when it comes back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseAddress } from '../../kernel/address.js';
import { silentLogger } from '../../kernel/logger.js';
import { call, notify } from '../../kernel/rpc/rpc-client.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { MonitorMessages, MonitorMethods, MonitorPayloads, type MapUpdate } from '../../services/monitor/protocol.js';
import { SimulatedOsd, serveMonitorOverTcp, until, type ServedMonitor } from './rpc-harness.js';

let mon: ServedMonitor;
const osds: SimulatedOsd[] = [];

test.before(async () => {
  mon = await serveMonitorOverTcp();
  for (let i = 0; i < 6; i++) osds.push(new SimulatedOsd([mon.address], i, `host-${i % 3}`));
});
test.after(async () => {
  for (const osd of osds) await osd.close();
  await mon.close();
});

test('a fresh cluster (epoch 0) still hands a subscriber its map', async () => {
  const map = await osds[1].client.subscribe();
  assert.is(map.epoch, 0);
  assert.equal(map.osds, []);
});

test('OSDs boot over RPC and get ids; a subscriber gets the full map first', async () => {
  for (const osd of osds) await osd.boot();
  assert.equal(osds.map((o) => o.osdId), [0, 1, 2, 3, 4, 5]);
  for (const osd of osds) osd.startHeartbeats();
  const map = await osds[0].client.subscribe();
  assert.is(map.osds.length, 6);
  assert.is(map.epoch, mon.monitor.state.epoch);
});

test('each new epoch arrives as a delta and applies to the same map the monitor holds', async () => {
  const seen: number[] = [];
  osds[0].client.onMap((m) => seen.push(m.epoch));
  await osds[0].client.admin('pool create', { name: 'rbd', pgNum: 32 });
  await osds[0].client.admin('image create', { pool: 'rbd', name: 'vm1', sizeBytes: 1 << 30 });
  await osds[0].client.waitForEpoch(mon.monitor.state.epoch);
  assert.equal(osds[0].client.map, mon.monitor.map());
  assert.ok(seen.length >= 2);
});

test('a map too big for a frame header (4,096 PGs) travels as payload: pushes and GetMap', async () => {
  await osds[0].client.admin('pool create', { name: 'big', pgNum: 4096 });
  await osds[0].client.waitForEpoch(mon.monitor.state.epoch);
  assert.is(osds[0].client.map!.pgs.length, 32 + 4096);
  const fetched = await osds[2].client.fetchMap();
  assert.equal(fetched, mon.monitor.map());
  const fresh = await osds[3].client.subscribe();
  assert.equal(fresh, mon.monitor.map());
  // Heartbeats with thousands of PG reports go as payload too.
  const reports = fetched.pgs.filter((pg) => pg.replicas.some((r) => r.osd === 3)).map((pg) => ({ pool: pg.pool, index: pg.index, state: 'active', leader: false, term: 7 }));
  assert.ok(reports.length > 1000);
  osds[3].stopHeartbeats();
  await osds[3].client.heartbeat({ osdId: 3, epoch: fetched.epoch, pgs: reports });
  const status = await osds[0].client.pgStatus();
  assert.is(status.filter((s) => s.state === 'active').length, reports.length, 'PG states of a big pool come back as payload');
  osds[3].startHeartbeats();
  await osds[0].client.admin('pool rm', { name: 'big' });
});

test('down after the grace period, out after the longer one, back in on return', async () => {
  const victim = osds[5];
  victim.stopHeartbeats();
  await until('osd.5 down', () => mon.monitor.state.osds.get(5)?.up === false, 5000);
  assert.ok(mon.monitor.state.osds.get(5)!.in);
  await until('osd.5 out', () => mon.monitor.state.osds.get(5)?.in === false, 5000);
  await osds[0].client.waitForEpoch(mon.monitor.state.epoch);
  assert.ok(osds[0].client.map!.pgs.every((pg) => pg.replicas.every((r) => r.osd !== 5)), 'subscribers see the PGs move');
  victim.startHeartbeats();
  await until('osd.5 back', () => mon.monitor.state.osds.get(5)?.in === true && mon.monitor.state.osds.get(5)!.up, 5000);
  await osds[0].client.waitForEpoch(mon.monitor.state.epoch);
  assert.ok(osds[0].client.map!.pgs.some((pg) => pg.replicas.some((r) => r.osd === 5)));
});

test('a subscriber that falls behind gets the full map again', async () => {
  const transport = new TcpTransport({ source: 'lagging', requestTimeoutMs: 3000 }, silentLogger());
  const connection = transport.connect({ address: parseAddress(mon.address), shard: 0 });
  const updates: MapUpdate[] = [];
  connection.onMessage!((m) => {
    if (m.method === MonitorMessages.MapPush.id) updates.push(MonitorPayloads.MapUpdate.decode(m.payload));
  });
  await call(connection, MonitorMethods.Subscribe, { knownEpoch: 0, name: 'lagging' });
  await until('the full map', () => updates.length === 1);
  assert.ok(updates[0].full);
  // Never acknowledge: after the window (16 epochs) pushes stop.
  for (let i = 0; i < 24; i++) await osds[0].client.admin('image create', { pool: 'rbd', name: `lag-${i}`, sizeBytes: 1 << 20 });
  await new Promise((r) => setTimeout(r, 200));
  const deltas = updates.filter((u) => u.delta).length;
  assert.is(deltas, 15, "the full map and 15 deltas fill the window of 16");
  notify(connection, MonitorMessages.MapAck, { epoch: updates[1].delta!.epoch });
  await until('the full map again', () => updates.at(-1)?.full !== undefined);
  assert.is(updates.at(-1)!.full!.epoch, mon.monitor.state.epoch);
  await transport.close();
});

test('bad boot input is refused with a clear error', async () => {
  const transport = new TcpTransport({ source: 'bad', requestTimeoutMs: 3000 }, silentLogger());
  const connection = transport.connect({ address: parseAddress(mon.address), shard: 0 });
  const request = { osdId: -1, uuid: 'x', address: { host: '127.0.0.1', port: 1 }, shards: 1, host: 'h', failureDomain: '', weight: 1 };
  let message = '';
  await call(connection, MonitorMethods.Boot, request).catch((err: Error) => (message = err.message));
  assert.match(message, /uuid must be/);
  await transport.close();
});

test.run();
