// @slow
/**
 * /metrics of real daemons: a local cluster (monitor, 3 OSDs, an NBD gateway) with metrics on,
 * scraped before and after qemu-io writes and reads through NBD. The gateway's per-export
 * counters, the OSDs' request counters, latency histogram, bytes and raft figures, and the
 * monitor's cluster gauges must all move by what was done. Then a daemon whose metrics.listen is
 * taken or malformed refuses to start with one clear line. The exposition of a histogram kept as
 * bucket counts is checked on its own first.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { BucketHistogram } from '../../kernel/metrics/bucket-histogram.js';
import { startTestCluster, storePlugin } from '../cluster/harness/test-cluster.js';
import { freePortBlock } from '../support/ports.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const MiB = 1024 * 1024;

/** name{labels} -> value, from the text exposition format; labels sorted by name. */
type Samples = Map<string, number>;

function parse(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    const series = line.slice(0, at);
    const brace = series.indexOf('{');
    const key =
      brace < 0
        ? series
        : `${series.slice(0, brace)}{${[...series.slice(brace).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
            .map((m) => `${m[1]}="${m[2]}"`)
            .sort()
            .join(',')}}`;
    samples.set(key, Number(line.slice(at + 1)));
  }
  return samples;
}

async function scrape(url: string): Promise<Samples> {
  const response = await fetch(url);
  assert.is(response.status, 200, url);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  return parse(await response.text());
}

const value = (s: Samples, key: string): number => {
  const v = s.get(key);
  if (v === undefined) throw new Error(`no sample ${key}; have ${[...s.keys()].filter((k) => k.startsWith(key.split('{')[0])).join(', ') || 'none of that name'}`);
  return v;
};

const sum = (samples: readonly Samples[], key: string): number => samples.reduce((total, s) => total + value(s, key), 0);

function daemon(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/fastblockd.ts', ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

test('a histogram kept as bucket counts is exposed cumulative, with sum and count', async () => {
  const registry = new Registry();
  new BucketHistogram({
    name: 'demo_duration_seconds',
    help: 'demo',
    labelNames: ['op'],
    bounds: [0.001, 0.01],
    registers: [registry],
    read: () => [{ labels: { op: 'write' }, counts: [2, 3, 1], sum: 0.5 }],
  });
  const samples = parse(await registry.metrics());
  assert.is(value(samples, 'demo_duration_seconds_bucket{le="0.001",op="write"}'), 2);
  assert.is(value(samples, 'demo_duration_seconds_bucket{le="0.01",op="write"}'), 5);
  assert.is(value(samples, 'demo_duration_seconds_bucket{le="+Inf",op="write"}'), 6);
  assert.is(value(samples, 'demo_duration_seconds_sum{op="write"}'), 0.5);
  assert.is(value(samples, 'demo_duration_seconds_count{op="write"}'), 6);
  assert.match(await registry.metrics(), /# TYPE demo_duration_seconds histogram/);
});

if (!storePlugin()) {
  console.log('SKIP metrics cluster: the blobstore plugin is not in the tree');
} else {
  test('every daemon serves /metrics, and the figures move with I/O through NBD', async () => {
    // metrics: monitor, gateway, then OSDs from +10.
    const metricsBasePort = await freePortBlock(Array.from({ length: 13 }, (_, i) => i));
    const { cluster, cleanup } = await startTestCluster({
      name: 'metrics',
      storeSizeMb: 256,
      pool: { name: 'rbd', size: 3, pgNum: 8 },
      image: { name: 'disk', sizeBytes: 64 * MiB },
      metricsBasePort,
      logLevel: 'warn',
    });
    let failure: unknown;
    try {
      const urls = cluster.metricsUrls;
      assert.equal(Object.keys(urls).sort(), ['gateway', 'mon', 'osd0', 'osd1', 'osd2']);
      const osds = ['osd0', 'osd1', 'osd2'];
      const scrapeOsds = () => Promise.all(osds.map((name) => scrape(urls[name])));
      const osdBefore = await scrapeOsds();
      const gatewayBefore = await scrape(urls.gateway);

      const written = 4 * MiB;
      // Read twice: the first read fills the leaders' read caches, the second hits them.
      await promisify(execFile)('qemu-io', ['-f', 'raw', '-c', `write -P 0x5a 0 ${written}`, '-c', `read -P 0x5a 0 ${MiB}`, '-c', `read -P 0x5a 0 ${MiB}`, cluster.nbdUri]);

      const gateway = await scrape(urls.gateway);
      const exportLabels = `export="rbd/disk",frontend="nbd"`;
      assert.is(value(gateway, `fastblock_frontend_written_bytes_total{${exportLabels}}`) - (gatewayBefore.get(`fastblock_frontend_written_bytes_total{${exportLabels}}`) ?? 0), written);
      assert.ok(value(gateway, `fastblock_frontend_read_bytes_total{${exportLabels}}`) >= MiB, 'the gateway counted the read');
      assert.ok(value(gateway, `fastblock_frontend_requests_total{${exportLabels},op="write"}`) >= 1);
      assert.ok(value(gateway, 'process_cpu_seconds_total') > 0, 'process figures are served');
      assert.match(String([...gateway.keys()].find((k) => k.startsWith('fastblock_daemon_info'))), /plugins="tcp,client,nbd"/);

      const osdAfter = await scrapeOsds();
      const ok = 'fastblock_osd_requests_total{op="write",result="ok"}';
      assert.ok(sum(osdAfter, ok) > sum(osdBefore, ok), 'the leaders counted OK writes');
      // Every byte reaches one leader once (the client splits I/O by object, objects by PG).
      assert.is(sum(osdAfter, 'fastblock_osd_written_bytes_total') - sum(osdBefore, 'fastblock_osd_written_bytes_total'), written);
      assert.ok(sum(osdAfter, 'fastblock_osd_read_bytes_total') - sum(osdBefore, 'fastblock_osd_read_bytes_total') >= MiB);
      const hits = 'fastblock_osd_store_read_cache_hits_total{shard="0"}';
      assert.ok(sum(osdAfter, hits) > sum(osdBefore, hits), 'the second read hit the read cache');
      assert.ok(sum(osdAfter, 'fastblock_osd_store_read_cache_bytes{shard="0"}') >= MiB);
      const count = 'fastblock_osd_request_duration_seconds_count{op="write"}';
      assert.is(sum(osdAfter, count) - sum(osdBefore, count), sum(osdAfter, ok) - sum(osdBefore, ok), 'one latency sample per OK write');
      assert.ok(sum(osdAfter, 'fastblock_osd_request_duration_seconds_sum{op="write"}') > sum(osdBefore, 'fastblock_osd_request_duration_seconds_sum{op="write"}'));
      // Every OSD wrote raft log entries for the writes (as leader or follower) and waited for them.
      // A write is acknowledged once two of three have it: the third may still be flushing.
      const flushes = 'fastblock_osd_raft_log_flush_duration_seconds_count';
      let flushed = osdAfter;
      for (let tries = 0; osds.some((_, i) => value(flushed[i], flushes) <= value(osdBefore[i], flushes)); tries++) {
        if (tries === 50) break;
        await new Promise((r) => setTimeout(r, 100));
        flushed = await scrapeOsds();
      }
      for (let i = 0; i < osds.length; i++) {
        assert.ok(value(flushed[i], flushes) > value(osdBefore[i], flushes), `${osds[i]} counted its log flushes`);
        assert.ok(value(flushed[i], 'fastblock_osd_raft_log_flush_duration_seconds_sum') > value(osdBefore[i], 'fastblock_osd_raft_log_flush_duration_seconds_sum'));
        assert.is(value(flushed[i], 'fastblock_osd_raft_log_flush_duration_seconds_bucket{le="+Inf"}'), value(flushed[i], flushes));
      }
      assert.is(sum(osdAfter, 'fastblock_osd_raft_proposals_committed_total') - sum(osdBefore, 'fastblock_osd_raft_proposals_committed_total'), sum(osdAfter, ok) - sum(osdBefore, ok));
      // Size 3 on 3 OSDs: every OSD applies every write, as leader or follower (a follower learns
      // the commit index from the leader's next message, a tick later).
      const applied = 'fastblock_osd_raft_entries_applied_total';
      for (let tries = 0; ; tries++) {
        const now = await scrapeOsds();
        const behind = osds.filter((_, i) => value(now[i], applied) <= value(osdBefore[i], applied));
        if (behind.length === 0) break;
        if (tries === 50) assert.unreachable(`${behind.join(', ')} did not apply the writes`);
        await new Promise((r) => setTimeout(r, 100));
      }
      for (let i = 0; i < osds.length; i++) {
        assert.is(value(osdAfter[i], 'fastblock_osd_pgs{role="hosted"}'), 8);
        assert.ok(value(osdAfter[i], 'fastblock_osd_store_used_bytes{shard="0"}') > 0);
        const logs = value(osdAfter[i], 'fastblock_osd_store_raft_log_bytes{shard="0"}');
        assert.ok(logs > 0 && logs <= value(osdAfter[i], 'fastblock_osd_store_used_bytes{shard="0"}'), `raft logs hold ${logs} bytes`);
        // New stores keep their logs in a shard journal: its live records and their budget (a third of the ring).
        const budget = value(osdAfter[i], 'fastblock_osd_store_raft_log_budget_bytes{shard="0"}');
        assert.ok(budget > 0 && budget < logs, `journal budget ${budget} of a ${logs}-byte journal`);
        assert.ok(value(osdAfter[i], 'fastblock_osd_store_raft_log_live_bytes{shard="0"}') > 0, 'the journal holds live records');
        assert.ok(value(osdAfter[i], 'fastblock_osd_store_capacity_bytes{shard="0"}') > 200 * MiB);
        assert.is(value(osdAfter[i], 'fastblock_osd_shards_answering'), 1);
      }
      assert.is(sum(osdAfter, 'fastblock_osd_pgs{role="leader"}'), 8, 'each PG has one leader');

      const mon = await scrape(urls.mon);
      assert.is(value(mon, 'fastblock_monitor_leader'), 1);
      assert.ok(value(mon, 'fastblock_cluster_map_epoch') > 0);
      assert.is(value(mon, 'fastblock_cluster_osds{state="up"}'), 3);
      assert.is(value(mon, 'fastblock_cluster_osds{state="in"}'), 3);
      assert.is(value(mon, 'fastblock_cluster_pgs{state="active"}'), 8);
      assert.is(value(mon, 'fastblock_cluster_health'), 0);
      assert.ok(value(mon, 'fastblock_cluster_capacity_bytes') > 600 * MiB);
      assert.ok(value(mon, 'fastblock_cluster_osd_used_ratio{osd="0"}') > 0);

      const missing = await fetch(urls.mon.replace('/metrics', '/nothing'));
      assert.is(missing.status, 404);
      const status = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'cli/fastblock.ts', 'status', '--addr', cluster.monitorAddress], { cwd: root });
      assert.ok(status.stdout.includes(`metrics   ${urls.mon}`), `fastblock status names the daemon's /metrics: ${status.stdout}`);

      // A taken port and a malformed address: one line naming metrics.listen, exit 1.
      const taken = await daemon(['--plugins', 'tcp', '--listen', '127.0.0.1:0', '--set', `metrics.listen=127.0.0.1:${metricsBasePort}`]);
      assert.is(taken.code, 1);
      assert.match(taken.stderr, /^fastblockd: metrics\.listen 127\.0\.0\.1:\d+: cannot listen \(EADDRINUSE\): the port is in use/);
      const malformed = await daemon(['--plugins', 'tcp', '--listen', '127.0.0.1:0', '--set', 'metrics.listen=localhost']);
      assert.is(malformed.code, 1);
      assert.match(malformed.stderr, /^fastblockd: invalid config: metrics\.listen = "localhost" \(from flag\): must be HOST:PORT/);
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      await cleanup(failure);
    }
  });
}

test.run();
