/**
 * An NVM subsystem: one exported volume as namespace 1. One image per subsystem keeps an export's
 * life (create, remove) independent of every other export and lets a host connect to exactly the
 * images it names (see docs/nvmf.md).
 */
import { createHash } from 'node:crypto';
import { IoCounters } from './io-counters.js';
import type { Namespace } from './namespace.js';
import { Subsystem } from './subsystem.js';

export class NvmSubsystem extends Subsystem {
  readonly kind = 'nvm' as const;
  readonly namespaces = new Map<number, Namespace>();
  /** 20 ASCII characters, stable for a given NQN. */
  readonly serial: string;
  readonly counters = new IoCounters();

  constructor(nqn: string, namespaces: readonly Namespace[]) {
    super(nqn);
    for (const ns of namespaces) this.namespaces.set(ns.nsid, ns);
    this.serial = createHash('sha1').update(nqn).digest('hex').slice(0, 20);
  }

  /** A namespace acknowledges writes before they are durable (Identify Controller VWC). */
  get volatileWriteCache(): boolean {
    return [...this.namespaces.values()].some((ns) => ns.volatileWriteCache);
  }

  /** Highest namespace id (Identify Controller NN). */
  get maxNsid(): number {
    return Math.max(0, ...this.namespaces.keys());
  }
}
