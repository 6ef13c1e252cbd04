/** The cluster map from the monitors: a subscription kept by the monitor's client helper. */
import type { ClusterMap } from '../kernel/contracts/cluster-map.js';
import { ErrorCode, FastblockError } from '../kernel/errors.js';
import type { MonitorClient } from '../services/monitor/client.js';
import type { ClusterMapSource } from './map-source.js';

export class MonitorMapSource implements ClusterMapSource {
  constructor(
    private readonly monitors: MonitorClient,
    /** How long refresh() waits for an epoch an OSD told us about. */
    private readonly waitMs = 5000,
  ) {}

  static async open(monitors: MonitorClient): Promise<MonitorMapSource> {
    await monitors.subscribe();
    return new MonitorMapSource(monitors);
  }

  current(): ClusterMap {
    const map = this.monitors.map;
    if (!map) throw new FastblockError(ErrorCode.INTERNAL, 'no cluster map yet: open() subscribes first', {});
    return map;
  }

  async refresh(minEpoch?: number): Promise<ClusterMap> {
    if (minEpoch === undefined) {
      // The subscription keeps us current; a direct fetch covers a subscription that is reconnecting.
      const fetched = await this.monitors.fetchMap().catch(() => undefined);
      const held = this.monitors.map;
      return fetched && (!held || fetched.epoch > held.epoch) ? fetched : this.current();
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new FastblockError(ErrorCode.TIMEOUT, `no map of epoch ${minEpoch} within ${this.waitMs} ms`, { minEpoch })), this.waitMs);
    });
    try {
      await Promise.race([this.monitors.waitForEpoch(minEpoch), timeout]);
    } finally {
      clearTimeout(timer);
    }
    return this.current();
  }

  async close(): Promise<void> {
    this.monitors.close();
  }
}
