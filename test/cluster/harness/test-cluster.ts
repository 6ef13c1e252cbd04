/**
 * A LocalCluster for the cluster suites: free ports, a fresh directory under the OS temp dir,
 * removed afterwards unless FASTBLOCK_KEEP_CLUSTER is set (the logs are then kept for a look).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster, type LocalClusterOptions } from '../../../cli/commands/vstart-cluster.js';
import { freePortBlock } from '../../support/ports.js';

const ROOT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', '..');

/** Ports for a monitor, a gateway and `osds` OSDs (each at its own base, with room for a shard port). */
async function freePorts(osds: number): Promise<{ monitorPort: number; osdBasePort: number; nbdPort: number }> {
  // Monitor P, NBD P+1, OSD i at P+10+10i (vstart-cluster.ts: osdBasePort + 10 i, shards after it).
  const base = await freePortBlock([0, 1, ...Array.from({ length: osds }, (_, i) => [10 + 10 * i, 11 + 10 * i]).flat()]);
  return { monitorPort: base, nbdPort: base + 1, osdBasePort: base + 10 };
}

/** The store plugin the OSDs load: the built-in blobstore (FASTBLOCK_TEST_STORE_PLUGIN overrides). */
export function storePlugin(): string | undefined {
  if (process.env.FASTBLOCK_TEST_STORE_PLUGIN) return process.env.FASTBLOCK_TEST_STORE_PLUGIN;
  return existsSync(join(ROOT, 'plugins', 'store-blobstore', 'plugin.ts')) ? 'blobstore' : undefined;
}

/**
 * Prints every warning and error the cluster's daemons logged (the last `limit` lines): a suite
 * calls it when it fails, so a CI log says why without the cluster directory, which is removed.
 */
export function printClusterWarnings(dir: string, limit = 60): void {
  const logs = join(dir, 'logs');
  if (!existsSync(logs)) return;
  const lines: string[] = [];
  for (const file of readdirSync(logs).sort()) {
    for (const line of readFileSync(join(logs, file), 'utf8').split('\n')) {
      // Levels are labels (warn, error, fatal) or pino's numbers (40 and up); a line that is not
      // JSON is a crash's stderr.
      const level = /"level":"?(\w+)"?/.exec(line)?.[1];
      const serious = level === undefined || ['warn', 'error', 'fatal'].includes(level) || Number(level) >= 40;
      if (line && serious) lines.push(`${file}: ${line.slice(0, 2000)}`);
    }
  }
  process.stdout.write(`--- ${lines.length} warnings and errors in ${logs}${lines.length > limit ? ` (the last ${limit})` : ''}\n${lines.slice(-limit).join('\n')}\n---\n`);
}

export interface TestCluster {
  readonly cluster: LocalCluster;
  /** Stops the cluster and removes its directory; given the failure that ended the suite, prints its logged warnings first. */
  cleanup(failure?: unknown): Promise<void>;
}

export async function startTestCluster(options: Partial<LocalClusterOptions> & { readonly name: string }): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), `fastblock-${options.name}-`));
  const removeDir = (): void => {
    if (!process.env.FASTBLOCK_KEEP_CLUSTER) rmSync(dir, { recursive: true, force: true });
    else process.stdout.write(`cluster kept in ${dir}\n`);
  };
  let cluster: LocalCluster;
  try {
    cluster = await LocalCluster.start({
      storeSizeMb: 1024,
      logLevel: 'info',
      ...(await freePorts(options.osds ?? 3)),
      ...options,
      dir,
      storePlugin: storePlugin(),
    });
  } catch (err) {
    // LocalCluster.start stops what it started before it throws; its directory goes too.
    printClusterWarnings(dir);
    removeDir();
    throw err;
  }
  return {
    cluster,
    cleanup: async (failure?: unknown) => {
      if (failure !== undefined) printClusterWarnings(dir);
      try {
        await cluster.stop();
      } finally {
        removeDir();
      }
    },
  };
}

/**
 * Runs `work` on a fresh test cluster and cleans up after it, whether it passed or not; when it
 * failed, the daemons' warnings are printed first.
 */
export async function withTestCluster<T>(options: Partial<LocalClusterOptions> & { readonly name: string }, work: (cluster: LocalCluster) => Promise<T>): Promise<T> {
  const { cluster, cleanup } = await startTestCluster(options);
  let result: T;
  try {
    result = await work(cluster);
  } catch (err) {
    await cleanup(err);
    throw err;
  }
  await cleanup();
  return result;
}

/**
 * The smallest real cluster a frontend suite needs: one OSD, pool `rbd` of size 1 and a 64 MiB image
 * `rbd/vm`, no gateway (the suite starts its own frontend daemon against `cluster.monitorAddress`).
 */
export function startOneReplicaImage(name: string): Promise<TestCluster> {
  return startTestCluster({
    name,
    osds: 1,
    pool: { name: 'rbd', size: 1, pgNum: 8 },
    image: { name: 'vm', sizeBytes: 64 * 2 ** 20 },
    storeSizeMb: 512,
    gateway: false,
    logLevel: 'warn',
  });
}
