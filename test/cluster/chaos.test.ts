// @slow
/**
 * Rolling SIGKILLs under load, checked like a linearizability test. Writers (each the only writer
 * of its blocks, one write at a time) stamp every 4 KiB block with its sequence number; readers
 * check that a read never returns a block older than the last write acknowledged before the read
 * began, nor bytes that no write wrote. Meanwhile OSDs are killed with SIGKILL and restarted: one at
 * a time (the PG keeps a majority), and now and then two at once (the PGs stop until one is back).
 * At the end every block must hold its last acknowledged write, or a later one whose outcome the
 * writer never learned; and no write may have failed, since no outage outlasts the client's retry
 * budget.
 *
 *   FASTBLOCK_CHAOS_SEED=n  replays a schedule;  FASTBLOCK_CHAOS_SECONDS=s  runs longer (default 35).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../../client/connect.js';
import type { Image } from '../../client/image.js';
import { waitForPort } from '../../cli/commands/vstart-cluster.js';
import { storePlugin, withTestCluster } from './harness/test-cluster.js';

const BLOCK = 4096;
const BLOCKS = 4096;
const WRITERS = 12;
const READERS = 4;
const OSDS = 3;
const SECONDS = Number(process.env.FASTBLOCK_CHAOS_SECONDS ?? 35);
const SEED = Number(process.env.FASTBLOCK_CHAOS_SEED ?? Date.now() % 1_000_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** xorshift32: the schedule and the writers' choices replay from the seed. */
function random(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

/** Block `block` as write `seq` leaves it: a header naming both, then bytes derived from them. */
function stamp(block: number, seq: number): Uint8Array {
  const data = new Uint8Array(BLOCK);
  const view = new DataView(data.buffer);
  view.setUint32(0, block, true);
  view.setUint32(4, seq, true);
  for (let i = 8; i < BLOCK; i++) data[i] = (block * 7 + seq * 13 + i) & 0xff;
  return data;
}

/** The sequence number a block holds (0: never written), or a description of what is wrong. */
function readStamp(block: number, data: Uint8Array): number | string {
  if (data.every((b) => b === 0)) return 0;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const seq = view.getUint32(4, true);
  if (view.getUint32(0, true) !== block) return `block ${block} holds block ${view.getUint32(0, true)}'s data`;
  if (!Buffer.from(data).equals(Buffer.from(stamp(block, seq)))) return `block ${block} holds torn or foreign bytes (header seq ${seq})`;
  return seq;
}

/** What is known of a block: its last acknowledged write and the writes issued after it. */
interface BlockState {
  acked: number;
  /** Issued after `acked`, outcome unknown (in flight, or failed). */
  readonly pending: Set<number>;
}

if (!storePlugin()) {
  console.log('SKIP chaos: no store plugin in the tree');
} else {
  test(`rolling SIGKILLs under writes and reads: nothing acknowledged is lost, no stale or torn read (seed ${SEED}, ${SECONDS} s)`, async () => {
    console.log(`chaos seed ${SEED} (FASTBLOCK_CHAOS_SEED=${SEED} replays the schedule)`);
    await withTestCluster({
      name: 'chaos',
      osds: OSDS,
      pool: { name: 'rbd', size: 3, pgNum: 16 },
      image: { name: 'disk', sizeBytes: BLOCKS * BLOCK },
      storeSizeMb: 512,
      gateway: false,
      logLevel: 'warn',
    }, async (cluster) => {
      const client = await connect({ monitors: [cluster.monitorAddress], name: 'chaos' });
      try {
        const image: Image = await client.openImage('rbd/disk');
        const blocks: BlockState[] = Array.from({ length: BLOCKS }, () => ({ acked: 0, pending: new Set<number>() }));
        const problems: string[] = [];
        const stats = { writes: 0, writeErrors: 0, reads: 0, slowestWriteMs: 0, slowestReadMs: 0, kills: 0, doubleKills: 0 };
        const t0 = Date.now();
        const at = (): string => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
        /** What happened when, for reading a long pause against the kills around it. */
        const timeline: string[] = [];
        let slowestWrite = '';
        let running = true;

        const writer = async (w: number): Promise<void> => {
          const rand = random(SEED * 31 + w + 1);
          let seq = 0;
          while (running) {
            const block = w + WRITERS * rand(Math.floor(BLOCKS / WRITERS));
            seq++;
            const state = blocks[block]!;
            state.pending.add(seq);
            const started = Date.now();
            try {
              await image.write(block * BLOCK, [stamp(block, seq)]);
              state.acked = seq;
              for (const s of state.pending) if (s <= seq) state.pending.delete(s);
              stats.writes++;
            } catch (err) {
              stats.writeErrors++;
              if (problems.length < 20) problems.push(`write of block ${block} seq ${seq} failed: ${(err as Error).message}`);
            }
            if (Date.now() - started > stats.slowestWriteMs) {
              stats.slowestWriteMs = Date.now() - started;
              slowestWrite = `block ${block} from ${((started - t0) / 1000).toFixed(1)}s to ${at()}`;
            }
          }
        };

        const reader = async (r: number): Promise<void> => {
          const rand = random(SEED * 17 + r + 101);
          while (running) {
            const block = rand(BLOCKS);
            const before = blocks[block]!.acked;
            const started = Date.now();
            let data: Uint8Array;
            try {
              data = await image.read(block * BLOCK, BLOCK);
            } catch (err) {
              if (problems.length < 20) problems.push(`read of block ${block} failed: ${(err as Error).message}`);
              continue;
            }
            stats.reads++;
            stats.slowestReadMs = Math.max(stats.slowestReadMs, Date.now() - started);
            const seq = readStamp(block, data);
            if (typeof seq === 'string') problems.push(`read: ${seq}`);
            else if (seq < before) problems.push(`stale read: block ${block} returned seq ${seq} after seq ${before} was acknowledged`);
          }
        };

        const chaos = async (): Promise<void> => {
          const rand = random(SEED);
          const until = Date.now() + SECONDS * 1000;
          while (Date.now() < until) {
            await sleep(1500 + rand(2500));
            const first = rand(OSDS);
            const victims = rand(4) === 0 ? [first, (first + 1 + rand(OSDS - 1)) % OSDS] : [first];
            for (const i of victims) cluster.kill(`osd${i}`);
            timeline.push(`${at()} kill ${victims.map((i) => `osd${i}`).join(' ')}`);
            stats.kills += victims.length;
            if (victims.length === 2) stats.doubleKills++;
            await sleep(victims.length === 2 ? 1500 + rand(1500) : 500 + rand(3000));
            for (const i of victims) cluster.startOsd(i);
            timeline.push(`${at()} restart`);
            // Back means serving again: its port open and every PG with a leader and all replicas
            // (the monitor's view lags a kill, so "up" alone would let outages overlap).
            for (const i of victims) await waitForPort(cluster.osdPort(i), 60_000, `osd${i}`);
            await cluster.waitForOsds(OSDS, 60_000);
            await cluster.waitForActive(60_000);
            timeline.push(`${at()} all active`);
          }
        };

        const workers = [...Array.from({ length: WRITERS }, (_, w) => writer(w)), ...Array.from({ length: READERS }, (_, r) => reader(r))];
        await chaos();
        await cluster.waitForActive(90_000);
        running = false;
        await Promise.all(workers);

        // Every block: its last acknowledged write, or a later one whose outcome the writer never saw.
        for (let block = 0; block < BLOCKS; block++) {
          const state = blocks[block]!;
          const seq = readStamp(block, await image.read(block * BLOCK, BLOCK));
          if (typeof seq === 'string') problems.push(`final: ${seq}`);
          else if (seq !== state.acked && !state.pending.has(seq)) {
            problems.push(`final: block ${block} holds seq ${seq}; last acknowledged ${state.acked}, unknown ${[...state.pending].join(',') || 'none'}`);
          }
        }
        await image.close();
        console.log(
          `chaos: ${stats.kills} kills (${stats.doubleKills} of two OSDs at once); ${stats.writes} writes, ${stats.reads} reads; ` +
            `slowest write ${stats.slowestWriteMs} ms (${slowestWrite}), slowest read ${stats.slowestReadMs} ms\n  ${timeline.join('\n  ')}`,
        );
        assert.equal(problems, [], `seed ${SEED}`);
        assert.is(stats.writeErrors, 0);
        assert.ok(stats.kills > 0 && stats.writes > 0 && stats.reads > 0, 'the run did something');
      } finally {
        await client.close();
      }
    });
  });
}

test.run();
