/**
 * The dependency-injection container and one token per contract. Tokens are strings, not symbols,
 * so that a third-party plugin with its own copy of this module still names the same contract.
 * Plugins receive a container in register(); they never import each other.
 */
import 'reflect-metadata';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';

export const TOKENS = {
  /** Transport (single provider: tcp or rdma). */
  Transport: 'fastblock:Transport',
  /** StoreFactory (single provider). */
  StoreFactory: 'fastblock:StoreFactory',
  /** Frontend (many: resolveAll). */
  Frontend: 'fastblock:Frontend',
  /** BlockVolumeProvider: opens images for frontends (the client library, or a test target). */
  BlockVolumeProvider: 'fastblock:BlockVolumeProvider',
  PlacementPolicy: 'fastblock:PlacementPolicy',
  LeaderPolicy: 'fastblock:LeaderPolicy',
  MetaStore: 'fastblock:MetaStore',
  /** The effective configuration (a convict-validated plain object). */
  Config: 'fastblock:Config',
  /** The root pino logger; plugins make children with { plugin: name }. */
  Logger: 'fastblock:Logger',
  /** The daemon's RPC dispatcher (kernel/rpc/rpc-server.ts): services add their methods to it. */
  RpcServer: 'fastblock:RpcServer',
  /** Named admin commands served by the control service (kernel/rpc/admin-commands.ts). */
  AdminCommands: 'fastblock:AdminCommands',
  /** The daemon's metrics registry (kernel/contracts/metrics.ts), served on metrics.listen. */
  Metrics: 'fastblock:Metrics',
} as const;

export type ContractName = keyof typeof TOKENS;

/** Contracts that at most one loaded plugin may provide. */
export const SINGLE_PROVIDER_CONTRACTS: readonly ContractName[] = [
  'Transport',
  'StoreFactory',
  'BlockVolumeProvider',
  'PlacementPolicy',
  'LeaderPolicy',
  'MetaStore',
];

/** A fresh child container per daemon, so tests can run several daemons in one process. */
export function createContainer(): DependencyContainer {
  return rootContainer.createChildContainer();
}

export type { DependencyContainer };
