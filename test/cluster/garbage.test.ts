// @slow
/**
 * Bytes from outside that are not the protocol: a random byte stream and a truncated handshake,
 * to an OSD's data port and to the monitor's control port. Each such connection is closed (with
 * the reason in the daemon's log); every daemon stays up and the cluster serves I/O as before.
 * Then, on the same cluster, a leader transfer as the monitor asks for one (TransferLeader to the
 * OSD's address) moves the PG's leadership, and I/O follows it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { connect } from '../../client/connect.js';
import { FrameKind, encodeFrameHead } from '../../kernel/rpc/frame.js';
import { HelloCodec } from '../../kernel/rpc/wire.js';
import { storePlugin, withTestCluster } from './harness/test-cluster.js';
import { call } from '../../kernel/rpc/rpc-client.js';
import { silentLogger } from '../../kernel/logger.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { MonitorMethods } from '../../services/monitor/protocol.js';

/** Sends `bytes` (then FIN when `end`), resolves when the server has closed the connection. */
function sendAndWaitClose(port: number, bytes: Uint8Array, end: boolean, timeoutMs = 15_000): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.write(bytes);
      if (end) socket.end();
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('open');
    }, timeoutMs);
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

if (!storePlugin()) {
  console.log('SKIP garbage: the blobstore plugin manifest (plugins/store-blobstore/plugin.ts) is not in the tree yet');
} else {
  test('garbage to the data and control ports closes only those connections; leader transfer on request', async () => {
    await withTestCluster({ name: 'garbage', gateway: false, pool: { name: 'rbd', size: 3, pgNum: 8 }, image: { name: 'disk', sizeBytes: 64 * 1024 * 1024 } }, async (cluster) => {
      const client = await connect({ monitors: [cluster.monitorAddress] });
      try {
        const image = await client.openImage('rbd/disk');
        const before = randomBytes(256 * 1024);
        await image.write(0, [before]);

        const ports = { data: cluster.osdPort(0), control: cluster.state.monitorPort };
        // A well-formed hello frame cut short: the handshake never completes.
        const hello = encodeFrameHead(FrameKind.HELLO, 0, 0, HelloCodec.encode({ protocol: 1, targetShard: 0, sourceShard: 0, source: 'garbage-test' }), undefined, false);
        const truncated = hello.subarray(0, Math.max(1, Math.floor(hello.length / 2)));
        for (const [name, port] of Object.entries(ports)) {
          for (let i = 0; i < 3; i++) assert.is(await sendAndWaitClose(port, randomBytes(4096), false), 'closed', `${name} port: random bytes must close the connection`);
          assert.is(await sendAndWaitClose(port, truncated, true), 'closed', `${name} port: a truncated handshake must close the connection`);
        }

        for (const handle of cluster.daemons.values()) assert.ok(processAlive(handle.pid), `${handle.name} is still running`);
        // A shard worker's log lines go through its thread's stdout, which reaches the daemon's
        // asynchronously: a loaded machine writes them after the connection closed. Look for 10 s.
        const logged = () => /bad frame|closing connection/.test(readFileSync(join(cluster.dir, 'logs', 'osd0.log'), 'utf8'));
        for (const deadline = Date.now() + 10_000; !logged() && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 100));
        assert.ok(logged(), 'the OSD logged why it closed the connections');
        assert.equal(await image.read(0, before.length), new Uint8Array(before));
        const after = randomBytes(64 * 1024);
        await image.write(1024 * 1024, [after]);
        assert.equal(await image.read(1024 * 1024, after.length), new Uint8Array(after));

        // Leader transfer, as the monitor's balancer asks for it.
        const map = await cluster.map();
        const pg = (await cluster.pgs()).find((p) => p.leader >= 0)!;
        const from = map.osds.find((o) => o.id === pg.leader)!;
        const to = pg.replicas.map((r) => r.osd).find((osd) => osd !== pg.leader)!;
        const transport = new TcpTransport({ source: 'test' }, silentLogger());
        try {
          const [pool, index] = pg.pg.split('.');
          const reply = await call(transport.connect({ address: from.address, shard: 0 }), MonitorMethods.TransferLeader, { pool: Number(pool), index: parseInt(index, 16), toOsd: to, epoch: map.epoch });
          assert.ok(reply.response.started);
        } finally {
          await transport.close();
        }
        const deadline = Date.now() + 20_000;
        let leader = pg.leader;
        while (leader !== to && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 300));
          leader = (await cluster.pgs()).find((p) => p.pg === pg.pg)!.leader;
        }
        assert.is(leader, to, `PG ${pg.pg} leadership moved from osd.${pg.leader} to osd.${to}`);
        await image.write(0, [after]);
        assert.equal(await image.read(0, after.length), new Uint8Array(after));
      } finally {
        await client.close();
      }
    });
  });
}

test.run();
