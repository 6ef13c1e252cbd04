/**
 * The discovery subsystem: the well-known NQN a host connects to for the discovery log, which lists
 * every NVM subsystem this target exports (and this discovery subsystem itself).
 */
import { Subsystem } from './subsystem.js';

export const DISCOVERY_NQN = 'nqn.2014-08.org.nvmexpress.discovery';

/** One discovery log entry's variable part. */
export interface DiscoveryEntry {
  readonly nqn: string;
  /** 2: an NVM subsystem; 3: the current discovery subsystem. */
  readonly subtype: 2 | 3;
  readonly address: string;
  readonly port: number;
}

export class DiscoverySubsystem extends Subsystem {
  readonly kind = 'discovery' as const;
  /** GENCTR: bumped whenever the entries change. */
  generation = 0;

  constructor(private readonly listEntries: () => readonly DiscoveryEntry[]) {
    super(DISCOVERY_NQN);
  }

  entries(): readonly DiscoveryEntry[] {
    return this.listEntries();
  }
}
