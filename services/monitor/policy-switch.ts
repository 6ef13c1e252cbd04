/**
 * Putting a policy version in force: run the candidate on the current map (dry run: PGs that would
 * move, balance before and after), and with apply commit it as the next epoch together with the
 * mapping it produced and, for a new version, its bytes. Used by the admin commands and by the
 * PolicyUpload RPC (which carries the bytes as payload, for policies too big for an admin call).
 */
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import type { PoolDryRun } from '../../plugins/placement/dry-run.js';
import type { StoredPolicy } from './map-repository.js';
import { publicOsd, type MonitorState, type PolicyKind } from './map-state.js';
import type { Monitor } from './monitor.js';
import { toMappings } from './remap.js';

export const KINDS: readonly PolicyKind[] = ['placement', 'leader'];
export const MAX_POLICY_BYTES = 16 * 2 ** 20;

export interface PolicySwitchReport {
  readonly dryRun: boolean;
  readonly kind: PolicyKind;
  readonly name: string;
  readonly version: number;
  readonly sha256: string;
  readonly pgsMoved: number;
  readonly pools: readonly PoolDryRun[];
  /** The epoch that activated it (apply only). */
  readonly epoch?: number;
}

export interface PolicyTarget {
  readonly name: string;
  readonly version: number;
  readonly bytes: Uint8Array;
  /** A new version: its bytes are stored with the switch. */
  readonly fresh: boolean;
}

export async function switchPolicy(monitor: Monitor, kind: PolicyKind, apply: boolean, pick: (stored: StoredPolicy[]) => PolicyTarget): Promise<PolicySwitchReport> {
  let result: PolicySwitchReport | undefined;
  const plan = async (s: MonitorState) => {
    const target = pick(await monitor.repo.policies(kind));
    const candidate = target.version === 0 ? monitor.policies.builtin(kind) : monitor.policies.load(kind, target.name, target.version, target.bytes);
    const report = await monitor.policies.trial(candidate, {
      pools: [...s.pools.values()],
      osds: [...s.osds.values()].map(publicOsd),
      current: (pool) => s.pgs.get(pool.id)?.map((pg) => pg.replicas) ?? [],
    });
    const info = { kind, name: candidate.name, version: candidate.version, sha256: candidate.module.sha256 };
    result = { dryRun: !apply, ...info, pgsMoved: report.pgsMoved, pools: report.pools };
    if (!apply) return undefined;
    const pgs = new Map([...report.mappings].map(([poolId, placed]) => [poolId, toMappings(s.pools.get(poolId)!, placed, s.pgs.get(poolId), s.epoch + 1)]));
    const extra = target.fresh ? [monitor.repo.policyOp({ ...info, createdMs: Date.now(), bytes: target.bytes })] : [];
    return {
      change: { policies: [info], pgs },
      extra,
      committed: (next: MonitorState) => {
        monitor.policies.activate(candidate);
        result = { ...result!, epoch: next.epoch };
      },
    };
  };
  if (apply) await monitor.mutate(plan);
  else await plan(monitor.state);
  return result!;
}

/** A new version of `kind` from `bytes`: a dry run, or (apply) stored and put in force. */
export function setPolicy(monitor: Monitor, kind: PolicyKind, name: string, bytes: Uint8Array, apply: boolean): Promise<PolicySwitchReport> {
  if (bytes.length === 0 || bytes.length > MAX_POLICY_BYTES) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `a policy must be 1..${MAX_POLICY_BYTES} bytes, got ${bytes.length}`, { bytes: bytes.length });
  }
  return switchPolicy(monitor, kind, apply, (stored) => ({ name, version: Math.max(0, ...stored.map((p) => p.version)) + 1, bytes, fresh: true }));
}

/** One version (0: the built-in) with its bytes. */
export async function getPolicy(monitor: Monitor, kind: PolicyKind, version: number): Promise<Omit<StoredPolicy, 'createdMs'> & { createdMs?: number }> {
  if (version === 0) {
    const builtin = monitor.policies.builtin(kind);
    return { kind, name: builtin.name, version: 0, sha256: builtin.module.sha256, bytes: builtin.module.bytes };
  }
  const stored = (await monitor.repo.policies(kind)).find((p) => p.version === version);
  if (!stored) throw new FastblockError(ErrorCode.NOT_FOUND, `no ${kind} policy version ${version}`, { kind, version });
  return stored;
}
