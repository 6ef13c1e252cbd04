/**
 * The monitor's RPC methods and messages (kernel/rpc/monitor.proto), typed. Decoded values have
 * the shapes of kernel/contracts/cluster-map.ts, so a ClusterMap travels without conversion.
 */
import type { ClusterMap, NetAddress, PolicyInfo } from '../../kernel/contracts/index.js';
import { loadProto, messageCodec } from '../../kernel/rpc/proto.js';
import { ServiceRange, rpcMessage, rpcMethod } from '../../kernel/rpc/rpc-method.js';
import type { MapDelta } from './map-delta.js';
import type { OsdUsage } from './capacity.js';
import type { PgReport } from './pg-status.js';

export interface MapUpdate {
  readonly full?: ClusterMap;
  readonly delta?: MapDelta;
}

export interface BootRequestMessage {
  osdId: number;
  uuid: string;
  address: NetAddress;
  shards: number;
  host: string;
  failureDomain: string;
  weight: number;
}

export interface BootReplyMessage {
  osdId: number;
  epoch: number;
}

/** What the leader monitor answers a heartbeat with. */
export interface HeartbeatReplyMessage {
  readonly epoch: number;
  /** Up OSDs past monitor.fullRatio (absent from a monitor that predates it: none). */
  readonly fullOsds?: readonly number[];
}

/** What MonitorClient.heartbeat takes; on the wire the reports are the payload (PgStates). */
export interface HeartbeatRequestMessage {
  osdId: number;
  epoch: number;
  pgs: PgReport[];
  /** The OSD's store summed over its shards; both 0 (or absent): not reported. */
  capacityBytes?: number;
  usedBytes?: number;
  /** Mean commit latency of the OSD's raft log writes since its previous heartbeat (µs); 0 or absent: none. */
  commitLatencyUs?: number;
}

export interface PgViewMessage {
  pool: number;
  index: number;
  state: string;
  leaderOsd: number;
}

export interface TransferLeaderRequestMessage {
  pool: number;
  index: number;
  toOsd: number;
  epoch: number;
}

const root = loadProto('monitor.proto');
const M = 'fastblock.monitor.Monitor';

export const MonitorMethods = {
  Boot: rpcMethod<BootRequestMessage, BootReplyMessage>(root, M, 'Boot', ServiceRange.monitor + 0x01),
  Heartbeat: rpcMethod<{ osdId: number; epoch: number; capacityBytes?: number; usedBytes?: number; commitLatencyUs?: number }, HeartbeatReplyMessage>(root, M, 'Heartbeat', ServiceRange.monitor + 0x02),
  Subscribe: rpcMethod<{ knownEpoch: number; name: string }, { epoch: number }>(root, M, 'Subscribe', ServiceRange.monitor + 0x03),
  GetMap: rpcMethod<Record<string, never>, { epoch: number }>(root, M, 'GetMap', ServiceRange.monitor + 0x04),
  WhoLeads: rpcMethod<Record<string, never>, { leader: string; thisMonitorLeads: boolean; epoch: number }>(root, M, 'WhoLeads', ServiceRange.monitor + 0x05),
  PgStatus: rpcMethod<Record<string, never>, { epoch: number }>(root, M, 'PgStatus', ServiceRange.monitor + 0x08),
  PolicyUpload: rpcMethod<{ kind: string; name: string; apply: boolean }, { reportJson: string }>(root, M, 'PolicyUpload', ServiceRange.monitor + 0x09),
  PolicyDownload: rpcMethod<{ kind: string; version: number }, { policy: PolicyInfo }>(root, M, 'PolicyDownload', ServiceRange.monitor + 0x0a),
  OsdUsage: rpcMethod<Record<string, never>, { epoch: number }>(root, M, 'OsdUsage', ServiceRange.monitor + 0x0b),
  /** The OSD side: services/osd serves it, the leader monitor calls it. */
  TransferLeader: rpcMethod<TransferLeaderRequestMessage, { started: boolean }>(root, 'fastblock.monitor.OsdControl', 'TransferLeader', ServiceRange.monitor + 0x10),
} as const;

export const MonitorMessages = {
  MapPush: rpcMessage<{ epoch: number; full: boolean }>(root, 'fastblock.monitor.MapPush', ServiceRange.monitor + 0x06),
  MapAck: rpcMessage<{ epoch: number }>(root, 'fastblock.monitor.MapAck', ServiceRange.monitor + 0x07),
} as const;

/** Payload codecs: what travels after the header because it grows with the cluster. */
export const MonitorPayloads = {
  MapUpdate: messageCodec<MapUpdate>(root, 'fastblock.monitor.MapUpdate'),
  PgStates: messageCodec<{ pgs: PgReport[] }>(root, 'fastblock.monitor.PgStates'),
  PgViews: messageCodec<{ pgs: PgViewMessage[] }>(root, 'fastblock.monitor.PgViews'),
  OsdUsages: messageCodec<{ osds: OsdUsage[] }>(root, 'fastblock.monitor.OsdUsages'),
} as const;
