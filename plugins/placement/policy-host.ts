/**
 * The policies in force, one per kind, and the only way to replace them: a candidate is admitted,
 * run on the live cluster (dry run), validated, and only then may be activated. Any refusal leaves
 * the policy in force untouched.
 */
import type { OsdInfo, PoolInfo, Replica } from '../../kernel/contracts/index.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import type { PolicyKind } from './abi.js';
import { builtinPolicyBytes, BUILTIN_POLICY_NAME } from './builtin.js';
import { dryRun, type DryRunReport } from './dry-run.js';
import { DEFAULT_LIMITS, type SandboxLimits } from './sandbox.js';
import { WasmLeaderPolicy, WasmPlacementPolicy } from './wasm-policy.js';

export interface ClusterView {
  readonly pools: readonly PoolInfo[];
  readonly osds: readonly OsdInfo[];
  current(pool: PoolInfo): readonly (readonly Replica[])[];
}

export type AnyWasmPolicy = WasmPlacementPolicy | WasmLeaderPolicy;

export class PolicyHost {
  private placementPolicy: WasmPlacementPolicy;
  private leaderPolicy: WasmLeaderPolicy;
  readonly limits: SandboxLimits;

  constructor(limits: SandboxLimits = DEFAULT_LIMITS) {
    this.limits = limits;
    this.placementPolicy = this.builtin('placement') as WasmPlacementPolicy;
    this.leaderPolicy = this.builtin('leader') as WasmLeaderPolicy;
  }

  /** The built-in policy of `kind`, as version 0. */
  builtin(kind: PolicyKind): AnyWasmPolicy {
    return this.load(kind, BUILTIN_POLICY_NAME[kind], 0, builtinPolicyBytes(kind));
  }

  get placement(): WasmPlacementPolicy {
    return this.placementPolicy;
  }

  get leader(): WasmLeaderPolicy {
    return this.leaderPolicy;
  }

  active(kind: PolicyKind): AnyWasmPolicy {
    return kind === 'placement' ? this.placementPolicy : this.leaderPolicy;
  }

  /** Admits bytes as a policy of `kind` (throws POLICY_REJECTED with the reason). Does not activate. */
  load(kind: PolicyKind, name: string, version: number, bytes: Uint8Array): AnyWasmPolicy {
    return kind === 'placement' ? new WasmPlacementPolicy(name, version, bytes, this.limits) : new WasmLeaderPolicy(name, version, bytes, this.limits);
  }

  /**
   * Runs a candidate on the cluster as it is. A placement candidate must map every pool validly; a
   * leader candidate must return valid transfers for the current leaders (an empty view is fine).
   */
  async trial(candidate: AnyWasmPolicy, view: ClusterView): Promise<DryRunReport> {
    if (candidate instanceof WasmPlacementPolicy) return await dryRun(candidate, view.pools, view.osds, (pool) => view.current(pool));
    const pgs = view.pools.flatMap((pool) =>
      view.current(pool).map((replicas, index) => ({ pool: pool.id, index, replicas, leaderOsd: replicas[0]?.osd ?? -1 })),
    );
    await candidate.balance({ osds: view.osds, pgs, maxTransfers: 16 });
    return { pools: [], pgsMoved: 0, mappings: new Map() };
  }

  activate(policy: AnyWasmPolicy): void {
    if (policy instanceof WasmPlacementPolicy) this.placementPolicy = policy;
    else if (policy instanceof WasmLeaderPolicy) this.leaderPolicy = policy;
    else throw new FastblockError(ErrorCode.INTERNAL, 'unknown policy class');
  }
}
