/** The `monitor` config section. */
import type { Schema } from 'convict';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

export interface MonitorConfig {
  /** Comma-separated etcd client URLs; empty: the embedded store (one monitor, a local file). */
  readonly etcd: string;
  /** Where the embedded store keeps its file. */
  readonly dataDir: string;
  /** Key prefix in the store: several clusters may share one etcd. */
  readonly prefix: string;
  /** Address other monitors give as the leader hint; empty: daemon.listen. */
  readonly advertise: string;
  readonly electionTtlS: number;
  readonly downAfterMs: number;
  readonly outAfterMs: number;
  readonly tickMs: number;
  readonly leaderBalanceIntervalMs: number;
  readonly leaderTransfersPerRound: number;
  readonly policyTimeoutMs: number;
  readonly policyMemoryMb: number;
  readonly nearFullRatio: number;
  readonly fullRatio: number;
  readonly slowCommitMs: number;
}

export const monitorConfigSchema: Schema<MonitorConfig> = {
  etcd: { doc: 'etcd client URLs, comma-separated (empty: embedded store in dataDir)', format: String, default: '' },
  dataDir: { doc: 'Directory of the embedded store', format: String, default: './fastblock-data/monitor' },
  prefix: { doc: 'Key prefix of this cluster in the store', format: String, default: '/fastblock/' },
  advertise: { doc: 'HOST:PORT other monitors name as leader (empty: daemon.listen)', format: String, default: '' },
  electionTtlS: { doc: 'Seconds before a dead leader monitor is replaced', format: 'nat', default: 3 },
  downAfterMs: { doc: 'An OSD silent this long is marked down (ms)', format: 'nat', default: 20_000 },
  outAfterMs: { doc: 'A down OSD silent this long is marked out (ms)', format: 'nat', default: 600_000 },
  tickMs: { doc: 'How often the leader checks for silent OSDs (ms)', format: 'nat', default: 1_000 },
  leaderBalanceIntervalMs: { doc: 'Leader balancing round interval (ms; 0 disables)', format: 'nat', default: 30_000 },
  leaderTransfersPerRound: { doc: 'Most leader transfers asked per round', format: 'nat', default: 16 },
  policyTimeoutMs: { doc: 'Time limit of one policy call (ms)', format: 'nat', default: 10_000 },
  policyMemoryMb: { doc: 'Memory cap of a policy (MiB)', format: 'nat', default: 256 },
  nearFullRatio: { doc: 'An OSD store fuller than this fraction (0..1) makes the cluster HEALTH_WARN', format: Number, default: 0.85 },
  fullRatio: { doc: 'An up OSD store fuller than this fraction (0..1) makes leaders refuse writes to the PGs it holds a replica of', format: Number, default: 0.95 },
  slowCommitMs: {
    doc: "An up OSD whose commit latency (its raft log flushes' mean over its last heartbeat interval) is past this many ms makes the cluster HEALTH_WARN (0: never)",
    format: 'nat',
    default: 500,
  },
};

/** What convict's formats cannot say. */
export function checkMonitorConfig(config: MonitorConfig): void {
  if (!(config.nearFullRatio > 0 && config.nearFullRatio <= 1)) {
    throw new FastblockError(ErrorCode.CONFIG_INVALID, `invalid config: monitor.nearFullRatio = ${config.nearFullRatio}: must be in (0, 1], e.g. 0.85`, { nearFullRatio: config.nearFullRatio });
  }
  if (!(config.fullRatio >= config.nearFullRatio && config.fullRatio <= 1)) {
    throw new FastblockError(ErrorCode.CONFIG_INVALID, `invalid config: monitor.fullRatio = ${config.fullRatio}: must be in [monitor.nearFullRatio (${config.nearFullRatio}), 1], e.g. 0.95`, { fullRatio: config.fullRatio, nearFullRatio: config.nearFullRatio });
  }
}
