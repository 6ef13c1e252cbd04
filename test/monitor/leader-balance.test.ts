// Leader balancing end to end: a monitor daemon (fastblockd --plugins tcp,monitor) and simulated
// OSDs that serve OsdControl/TransferLeader. The OSDs report a skewed set of leaders; the monitor
// asks the current leaders to transfer, never more than leaderTransfersPerRound per round.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../kernel/logger.js';
import { RpcServer } from '../../kernel/rpc/rpc-server.js';
import type { TransportListener } from '../../kernel/contracts/index.js';
import { MonitorMethods, type TransferLeaderRequestMessage } from '../../services/monitor/protocol.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { freePort } from './etcd-cluster.js';
import { SimulatedOsd, until } from './rpc-harness.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fastblock-lb-'));
const ROUND_MS = 400;
const PER_ROUND = 4;
let daemon: ChildProcess;
const osds: SimulatedOsd[] = [];
const listeners: TransportListener[] = [];
const serverTransport = new TcpTransport({ source: 'sim-osd-server' }, silentLogger());
const calls: { at: number; osd: number; request: TransferLeaderRequestMessage }[] = [];

test.before(async () => {
  const addr = `127.0.0.1:${await freePort()}`;
  daemon = spawn(
    process.execPath,
    ['--import', 'tsx', 'cli/fastblockd.ts', '--plugins', 'tcp,monitor', '--listen', addr, '--log-level', 'warn', '--set', `monitor.dataDir=${dir}`,
      '--set', `monitor.leaderBalanceIntervalMs=${ROUND_MS}`, '--set', `monitor.leaderTransfersPerRound=${PER_ROUND}`],
    { cwd: root, stdio: 'ignore' },
  );
  for (let i = 0; i < 6; i++) {
    const rpc = new RpcServer();
    const listener = await serverTransport.listen({ host: '127.0.0.1', port: 0 }, rpc);
    listeners.push(listener);
    const osd = new SimulatedOsd([addr], i, `host-${i % 3}`, listener.address);
    rpc.handle(MonitorMethods.TransferLeader, (request) => {
      calls.push({ at: Date.now(), osd: osd.osdId, request });
      return { response: { started: true } };
    });
    osds.push(osd);
  }
  for (let attempt = 0; ; attempt++) {
    try {
      await osds[0].boot();
      break;
    } catch (err) {
      if (attempt > 100) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  for (const osd of osds.slice(1)) await osd.boot();
  await osds[0].client.admin('pool create', { name: 'rbd', pgNum: 64 });
});

test.after(async () => {
  try {
    for (const osd of osds) await osd.close();
    for (const l of listeners) await l.close();
    await serverTransport.close();
  } finally {
    daemon.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('skewed leaders are evened out by bounded rounds of transfer requests to the current leaders', async () => {
  const map = await osds[0].client.fetchMap();
  // Every PG is led by its lowest-numbered replica: osd.0 leads far more than its share.
  const leaderOf = (pg: (typeof map.pgs)[number]) => Math.min(...pg.replicas.map((r) => r.osd));
  for (const osd of osds) {
    osd.reports = map.pgs
      .filter((pg) => pg.replicas.some((r) => r.osd === osd.osdId))
      .map((pg) => ({ pool: pg.pool, index: pg.index, state: 'active', leader: leaderOf(pg) === osd.osdId, term: 1 }));
    osd.startHeartbeats(100);
  }
  await until('three rounds of transfers', () => calls.length >= 3 * PER_ROUND, 15_000);
  for (const call of calls) {
    const pg = map.pgs.find((p) => p.pool === call.request.pool && p.index === call.request.index)!;
    assert.is(call.osd, leaderOf(pg), 'the request goes to the PG leader');
    assert.ok(pg.replicas.some((r) => r.osd === call.request.toOsd), 'to one of its replicas');
    assert.is.not(call.request.toOsd, call.osd);
  }
  // Rate bound: in any window shorter than one round, at most PER_ROUND requests.
  for (const call of calls) {
    const burst = calls.filter((c) => c.at >= call.at && c.at < call.at + ROUND_MS / 2).length;
    assert.ok(burst <= PER_ROUND, `${burst} transfers within half a round`);
  }
});

test.run();
