/**
 * A policy module as the monitor uses it: admitted once (wasm-module.ts), then every call runs in
 * the sandbox and its output is decoded and validated before anyone sees it.
 */
import { createHash } from 'node:crypto';
import type {
  LeaderBalanceInput,
  LeaderPolicy,
  LeaderTransfer,
  PlacementInput,
  PlacementPolicy,
  Replica,
} from '../../kernel/contracts/index.js';
import {
  decodeLeaderOutput,
  decodePlacementOutput,
  encodeLeaderInput,
  encodePlacementInput,
  osdOrder,
  type PolicyKind,
} from './abi.js';
import { DEFAULT_LIMITS, runSandboxed, type SandboxLimits } from './sandbox.js';
import { validatePlacement, validateTransfers } from './validate.js';
import { admitPolicyModule } from './wasm-module.js';

export interface PolicyModule {
  readonly kind: PolicyKind;
  readonly name: string;
  readonly version: number;
  /** The bytes as given (what is stored and hashed), not the capped ones that run. */
  readonly bytes: Uint8Array;
  readonly sha256: string;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

abstract class WasmPolicy {
  readonly module: PolicyModule;
  protected readonly runnable: Uint8Array;
  protected readonly limits: SandboxLimits;

  constructor(kind: PolicyKind, name: string, version: number, bytes: Uint8Array, limits: SandboxLimits) {
    this.runnable = admitPolicyModule(bytes, kind, limits.memoryPages);
    this.module = { kind, name, version, bytes, sha256: sha256Hex(bytes) };
    this.limits = limits;
  }

  get name(): string {
    return this.module.name;
  }

  get version(): number {
    return this.module.version;
  }
}

export class WasmPlacementPolicy extends WasmPolicy implements PlacementPolicy {
  constructor(name: string, version: number, bytes: Uint8Array, limits: SandboxLimits = DEFAULT_LIMITS) {
    super('placement', name, version, bytes, limits);
  }

  async place(input: PlacementInput): Promise<Replica[][]> {
    const order = osdOrder(input.osds);
    const words = await runSandboxed(this.runnable, 'placement', encodePlacementInput(input, order), this.limits);
    const mapping = decodePlacementOutput(words, input, order);
    validatePlacement(input, mapping);
    return mapping;
  }
}

export class WasmLeaderPolicy extends WasmPolicy implements LeaderPolicy {
  constructor(name: string, version: number, bytes: Uint8Array, limits: SandboxLimits = DEFAULT_LIMITS) {
    super('leader', name, version, bytes, limits);
  }

  async balance(input: LeaderBalanceInput): Promise<LeaderTransfer[]> {
    if (input.pgs.length === 0 || input.maxTransfers === 0) return [];
    const order = osdOrder(input.osds);
    const words = await runSandboxed(this.runnable, 'leader', encodeLeaderInput(input, order), this.limits);
    const transfers = decodeLeaderOutput(words, input, order);
    validateTransfers(input, transfers);
    return transfers;
  }
}
