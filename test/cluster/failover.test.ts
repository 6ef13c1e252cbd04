// @slow
/**
 * Leader failure under a real client: fio (nbd engine) runs a random-write job with crc32c
 * verification through the NBD gateway while the OSD that leads the most PGs is SIGKILLed. The
 * job must finish without an I/O error; the longest single I/O is the pause clients saw. The OSD
 * then restarts, catches up, and a full read-verify of everything fio wrote passes. The monitor's
 * leader balancer (a short round here) then hands the restarted OSD its share of leaders back.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runFio, type FioJob } from './harness/fio.js';
import { storePlugin, withTestCluster } from './harness/test-cluster.js';
import { busiestLeader } from './harness/leaders.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const VERIFY = ['--verify=crc32c', '--verify_fatal=1', '--randrepeat=1', '--norandommap=0'];

if (!storePlugin()) {
  console.log('SKIP failover: the blobstore plugin manifest (plugins/store-blobstore/plugin.ts) is not in the tree yet');
} else {
  test('SIGKILL of the busiest leader during fio verify: no I/O error, catch-up, full read-verify, leaders rebalanced', async () => {
    await withTestCluster({
      name: 'failover',
      pool: { name: 'rbd', size: 3, pgNum: 32 },
      image: { name: 'disk', sizeBytes: 256 * 1024 * 1024 },
      monitorSettings: { 'monitor.leaderBalanceIntervalMs': 2000 },
    }, async (cluster) => {
      const job: FioJob = { uri: cluster.nbdUri, rw: 'randwrite', bs: '4k', iodepth: 16, size: '24M', extra: [...VERIFY, '--do_verify=1', '--verify_backlog=256'] };
      const running = runFio(job);
      await sleep(4000);
      const victim = await busiestLeader(cluster);
      const killedAt = Date.now();
      cluster.kill(victim.daemon);
      const result = await running;
      console.log(`killed ${victim.daemon} (osd.${victim.osd}, leader of ${victim.leaders} PGs) ${((Date.now() - killedAt) / 1000).toFixed(1)} s before fio finished`);
      console.log(`fio: ${result.write.ios} writes, ${result.write.iops} IOPS, longest pause (slowest write) ${(result.write.maxUs / 1000).toFixed(0)} ms`);
      assert.is(result.error, 0, `fio reported error ${result.error}: ${result.stderr}`);
      assert.is(result.exitCode, 0, result.stderr);

      cluster.startOsd(victim.index);
      const restarted = Date.now();
      await cluster.waitForOsds(3, 60_000);
      await cluster.waitForActive(90_000);
      console.log(`osd.${victim.osd} back and every PG active in ${((Date.now() - restarted) / 1000).toFixed(1)} s`);
      const verify = await runFio({ ...job, extra: [...VERIFY, '--verify_only'] });
      assert.is(verify.error, 0, `read-verify failed: ${verify.stderr}`);
      assert.is(verify.exitCode, 0, verify.stderr);

      // The restarted OSD came back leading nothing; balancing rounds give it leaders again.
      const balancedBy = Date.now() + 60_000;
      let counts: number[] = [];
      for (;;) {
        const leaders = new Map<number, number>();
        for (const pg of await cluster.pgs()) if (pg.leader >= 0) leaders.set(pg.leader, (leaders.get(pg.leader) ?? 0) + 1);
        counts = [0, 1, 2].map((osd) => leaders.get(osd) ?? 0);
        if (Math.min(...counts) >= 8) break;
        assert.ok(Date.now() < balancedBy, `leaders per OSD still ${JSON.stringify(counts)} 60 s after the restart`);
        await sleep(1000);
      }
      console.log(`leaders per OSD after balancing: ${JSON.stringify(counts)}`);
    });
  });
}

test.run();
