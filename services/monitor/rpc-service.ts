/** The monitor's side of monitor.proto on the daemon's RpcServer. */
import type { InboundConnection } from '../../kernel/contracts/index.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import type { RpcServer } from '../../kernel/rpc/rpc-server.js';
import { name, oneOf } from './admin-args.js';
import { checkUsage } from './capacity.js';
import { MapDistribution } from './distribution.js';
import { KINDS, getPolicy, setPolicy } from './policy-switch.js';
import type { Monitor } from './monitor.js';
import { MonitorMessages, MonitorMethods, MonitorPayloads, type MapUpdate } from './protocol.js';

const MAX_PG_REPORTS = 1 << 20;

function checkBoot(request: { uuid: string; shards: number; weight: number; address?: { host: string; port: number } | null }): void {
  const fail = (why: string): never => {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `boot refused: ${why}`, { uuid: request.uuid });
  };
  if (!/^[A-Za-z0-9-]{8,64}$/.test(request.uuid)) fail('uuid must be 8-64 letters, digits or dashes');
  if (!request.address || !request.address.host || request.address.port < 1 || request.address.port > 65535) fail('address must be host and port 1..65535');
  if (request.shards < 1 || request.shards > 1024) fail('shards must be 1..1024');
  if (!(request.weight > 0 && request.weight <= 1e6)) fail('weight must be in (0, 1e6]');
}

export function serveMonitor(server: RpcServer, monitor: Monitor): { distribution: MapDistribution; stop: () => void } {
  const distribution = new MapDistribution(() => monitor.map());
  // Every subscriber gets the same delta (or full map) object for an epoch: encode it once.
  const encoded = new WeakMap<object, Uint8Array>();
  const encode = (update: MapUpdate): Uint8Array => {
    const key = update.full ?? update.delta!;
    let bytes = encoded.get(key);
    if (!bytes) encoded.set(key, (bytes = MonitorPayloads.MapUpdate.encode(update)));
    return bytes;
  };
  const removers = [
    monitor.onEpoch((before, after) => distribution.publish(before, after)),
    server.handle(MonitorMethods.Boot, async (request) => {
      checkBoot(request);
      return { response: await monitor.boot(request) };
    }),
    server.handle(MonitorMethods.Heartbeat, async (request, { payload }) => {
      const { pgs } = payload.length > 0 ? MonitorPayloads.PgStates.decode(payload) : { pgs: [] };
      if (pgs.length > MAX_PG_REPORTS) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `heartbeat carries ${pgs.length} PG reports`, {});
      const usage = checkUsage({ capacityBytes: request.capacityBytes ?? 0, usedBytes: request.usedBytes ?? 0, commitLatencyUs: request.commitLatencyUs ?? 0 });
      return { response: await monitor.heartbeat(request.osdId, pgs, usage) };
    }),
    server.handle(MonitorMethods.Subscribe, (request, { connection }) => {
      const sink = {
        push: (update: MapUpdate) => {
          const header = MonitorMessages.MapPush.message.encode({ epoch: update.full?.epoch ?? update.delta!.epoch, full: update.full !== undefined });
          connection.send(MonitorMessages.MapPush.id, header, [encode(update)]);
        },
      };
      distribution.subscribe(connection, sink, request.name, request.knownEpoch);
      return { response: { epoch: monitor.state.epoch } };
    }),
    server.on(MonitorMessages.MapAck, (message, { connection }) => distribution.ack(connection, message.epoch)),
    server.onClose((connection: InboundConnection) => distribution.unsubscribe(connection)),
    server.handle(MonitorMethods.GetMap, () => {
      const map = monitor.map();
      return { response: { epoch: map.epoch }, payload: [encode({ full: map })] };
    }),
    server.handle(MonitorMethods.PgStatus, async () => {
      if (!monitor.isLeader) throw await monitor.notLeaderError();
      const pgs = [...monitor.pgStatus.view()].map(([key, v]) => {
        const [pool, index] = key.split('.').map(Number);
        return { pool, index, state: v.state, leaderOsd: v.leaderOsd };
      });
      return { response: { epoch: monitor.state.epoch }, payload: [MonitorPayloads.PgViews.encode({ pgs })] };
    }),
    server.handle(MonitorMethods.OsdUsage, async () => {
      if (!monitor.isLeader) throw await monitor.notLeaderError();
      const osds = monitor.capacity.list(monitor.state.osds);
      return { response: { epoch: monitor.state.epoch }, payload: [MonitorPayloads.OsdUsages.encode({ osds })] };
    }),
    server.handle(MonitorMethods.PolicyUpload, async (request, { payload }) => {
      const kind = oneOf(request, 'kind', KINDS);
      const report = await setPolicy(monitor, kind, name(request, 'name'), Uint8Array.from(payload), request.apply);
      return { response: { reportJson: JSON.stringify(report) } };
    }),
    server.handle(MonitorMethods.PolicyDownload, async (request) => {
      const kind = oneOf(request, 'kind', KINDS);
      const version = request.version < 0 ? monitor.policies.active(kind).version : request.version;
      const policy = await getPolicy(monitor, kind, version);
      return { response: { policy: { kind, name: policy.name, version, sha256: policy.sha256 } }, payload: [policy.bytes] };
    }),
    server.handle(MonitorMethods.WhoLeads, async () => ({
      response: { leader: (await monitor.leaderHint()) ?? '', thisMonitorLeads: monitor.isLeader, epoch: monitor.state.epoch },
    })),
  ];
  return { distribution, stop: () => removers.forEach((remove) => remove()) };
}
