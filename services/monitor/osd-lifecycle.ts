/**
 * OSD up/down/in/out as pure functions of time and heartbeats, so they are tested without clocks.
 *
 *   up   --no heartbeat for downAfterMs-->  down
 *   down --no heartbeat for outAfterMs--->  out (autoOut; never while the noout flag is set)
 *   any  --boot or heartbeat----------->   up, and back in if the monitor had marked it out
 *
 * An operator's `osd out` is not undone by a heartbeat: only `osd in` undoes it.
 */
import type { ClusterFlags, OsdRecord } from './map-state.js';

export interface LifecycleTimes {
  readonly downAfterMs: number;
  readonly outAfterMs: number;
}

/** Records that change because time passed without heartbeats. */
export function expire(osds: Iterable<OsdRecord>, lastSeen: ReadonlyMap<number, number>, now: number, flags: ClusterFlags, times: LifecycleTimes): OsdRecord[] {
  const changed: OsdRecord[] = [];
  for (const osd of osds) {
    const silent = now - (lastSeen.get(osd.id) ?? osd.lastHeartbeatMs);
    if (osd.up && silent > times.downAfterMs) {
      changed.push({ ...osd, up: false, lastHeartbeatMs: lastSeen.get(osd.id) ?? osd.lastHeartbeatMs });
    } else if (!osd.up && osd.in && !flags.noout && silent > times.outAfterMs) {
      changed.push({ ...osd, in: false, autoOut: true, lastHeartbeatMs: lastSeen.get(osd.id) ?? osd.lastHeartbeatMs });
    }
  }
  return changed;
}

/** The record after a sign of life, or undefined when nothing in the map changes. */
export function revive(osd: OsdRecord, now: number): OsdRecord | undefined {
  if (osd.up && (osd.in || !osd.autoOut)) return undefined;
  return { ...osd, up: true, in: osd.in || osd.autoOut, autoOut: false, lastHeartbeatMs: now };
}
