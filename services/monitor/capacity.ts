/**
 * How full each OSD's store is, as its heartbeats say. Like PG states this is live state in the
 * leader monitor's memory, never in the map: it changes every heartbeat, and a new leader knows it
 * again within one heartbeat interval. A down OSD keeps its last report (its disk is as full as it
 * was); an OSD removed from the map is left out of every answer.
 */
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

export interface StoreUsage {
  readonly capacityBytes: number;
  readonly usedBytes: number;
  /**
   * Mean time the OSD's raft rounds waited for their log writes to be durable since its previous
   * heartbeat (µs): its disk's commit latency. 0 or absent: no log writes in that interval.
   */
  readonly commitLatencyUs?: number;
}

export interface OsdUsage extends StoreUsage {
  readonly osd: number;
  /** When the leader monitor received it (its clock). */
  readonly reportedMs: number;
}

/** uint32 on the wire: about 71 minutes, far past any flush a live OSD reports. */
export const MAX_COMMIT_LATENCY_US = 0xffff_ffff;

/** A heartbeat's figures, validated: bytes from outside must not poison the cluster totals. */
export function checkUsage(usage: StoreUsage): StoreUsage | undefined {
  const { capacityBytes, usedBytes } = usage;
  if (capacityBytes === 0 && usedBytes === 0) return undefined; // an OSD that does not report
  if (!Number.isSafeInteger(capacityBytes) || !Number.isSafeInteger(usedBytes) || capacityBytes <= 0 || usedBytes < 0 || usedBytes > capacityBytes) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `heartbeat store usage out of range: ${usedBytes} used of ${capacityBytes}`, { capacityBytes, usedBytes });
  }
  const commitLatencyUs = usage.commitLatencyUs ?? 0;
  if (!Number.isSafeInteger(commitLatencyUs) || commitLatencyUs < 0 || commitLatencyUs > MAX_COMMIT_LATENCY_US) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `heartbeat commit latency out of range: ${commitLatencyUs} µs`, { commitLatencyUs });
  }
  return { capacityBytes, usedBytes, commitLatencyUs };
}

/** monitor.fullRatio's default: past it, an up OSD's PGs take no writes (and osd.fullRatio's). */
export const DEFAULT_FULL_RATIO = 0.95;

export function usedRatio(usage: StoreUsage): number {
  return usage.capacityBytes > 0 ? usage.usedBytes / usage.capacityBytes : 0;
}

/** Whole percent, rounded down (99.6% full is not yet 100%), without 0.91 * 100 becoming 90. */
export function wholePercent(ratio: number): number {
  return Math.floor(ratio * 100 + 1e-9);
}

export class CapacityTable {
  private readonly byOsd = new Map<number, OsdUsage>();

  report(osd: number, usage: StoreUsage, now: number): void {
    this.byOsd.set(osd, { osd, capacityBytes: usage.capacityBytes, usedBytes: usage.usedBytes, commitLatencyUs: usage.commitLatencyUs ?? 0, reportedMs: now });
  }

  get(osd: number): OsdUsage | undefined {
    return this.byOsd.get(osd);
  }

  /** The OSDs `known` lists whose last report is past `ratio`, by id: one pass, no copy of the table. */
  fullerThan(ratio: number, known: { has(osd: number): boolean }): number[] {
    const full: number[] = [];
    for (const u of this.byOsd.values()) if (usedRatio(u) > ratio && known.has(u.osd)) full.push(u.osd);
    return full.sort((a, b) => a - b);
  }

  /** The reports of the OSDs `known` still lists, by OSD id. */
  list(known: { has(osd: number): boolean }): OsdUsage[] {
    return [...this.byOsd.values()].filter((u) => known.has(u.osd)).sort((a, b) => a.osd - b.osd);
  }
}

/** The cluster's raw figures: the sum over the OSDs that reported. */
export function totalUsage(usages: readonly StoreUsage[]): StoreUsage {
  let capacityBytes = 0;
  let usedBytes = 0;
  for (const u of usages) {
    capacityBytes += u.capacityBytes;
    usedBytes += u.usedBytes;
  }
  return { capacityBytes, usedBytes };
}
