/**
 * The monitor's admin commands (served by the control service's Admin call; the `fastblock` CLI
 * is their client). Reads are answered by any monitor; changes only by the leader (NOT_LEADER with
 * a hint otherwise). Destructive commands are confirmed by the CLI (--yes), not here.
 */
import { randomBytes } from 'node:crypto';
import type { ImageInfo, PoolInfo } from '../../kernel/contracts/index.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import type { AdminArgs, AdminCommand, AdminCommands } from '../../kernel/rpc/admin-commands.js';
import { sha256Hex } from '../../plugins/placement/wasm-policy.js';
import { base64, bool, int, name, oneOf, optionalName, text } from './admin-args.js';
import { DEFAULT_WATCH_LEASE_MS, MAX_WATCH_LEASE_MS, MIN_WATCH_LEASE_MS, type WatchedAnswer } from './image-watchers.js';
import { publicOsd, type MonitorState } from './map-state.js';
import type { Monitor } from './monitor.js';
import { KINDS, MAX_POLICY_BYTES, getPolicy, setPolicy, switchPolicy } from './policy-switch.js';
import { clusterStatus } from './status.js';

const MAX_IMAGE_BYTES = 2 ** 50;

function poolByName(state: MonitorState, pool: string): PoolInfo {
  const found = [...state.pools.values()].find((p) => p.name === pool);
  if (!found) throw new FastblockError(ErrorCode.NOT_FOUND, `no pool named '${pool}' (pools: ${[...state.pools.values()].map((p) => p.name).join(', ') || 'none'})`, { pool });
  return found;
}

function imageByName(state: MonitorState, pool: PoolInfo, image: string): ImageInfo {
  const found = [...state.images.values()].find((i) => i.pool === pool.id && i.name === image);
  if (!found) throw new FastblockError(ErrorCode.NOT_FOUND, `no image '${image}' in pool '${pool.name}'`, { pool: pool.name, image });
  return found;
}

function osdById(state: MonitorState, args: AdminArgs) {
  const id = int(args, 'id', 0, 2 ** 31 - 1);
  const osd = state.osds.get(id);
  if (!osd) throw new FastblockError(ErrorCode.NOT_FOUND, `no osd.${id}`, { osd: id });
  return osd;
}

/** BUSY unless the image is known to be open nowhere. */
function refuseWatched(spec: string, answer: WatchedAnswer): void {
  if (!answer.known) {
    throw new FastblockError(
      ErrorCode.BUSY,
      `image '${spec}' may be open: this monitor became the leader moments ago and clients re-register their watches within ${Math.ceil(answer.knownInMs / 1000)} s; retry then (or force)`,
      { image: spec, watchersKnownInMs: answer.knownInMs },
    );
  }
  if (answer.watchers.length === 0) return;
  const who = answer.watchers.map((w) => `${w.description} (${w.id})`).join(', ');
  throw new FastblockError(ErrorCode.BUSY, `image '${spec}' is open by ${answer.watchers.length} client${answer.watchers.length === 1 ? '' : 's'}: ${who}; close ${answer.watchers.length === 1 ? 'it' : 'them'} first (or force)`, {
    image: spec,
    watchers: answer.watchers.map((w) => w.id),
  });
}

function sizeArg(args: AdminArgs, key: string): number {
  const size = int(args, key, 1, MAX_IMAGE_BYTES);
  if (size % 512 !== 0) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${key} must be a multiple of 512 bytes, got ${size}`, { arg: key });
  return size;
}


/** An image's watchers, as `image status` shows them and `image rm` checks them. */
function watchersReport(answer: WatchedAnswer): Record<string, unknown> {
  return answer.known ? { watchers: answer.watchers, watchersKnown: true } : { watchers: [], watchersKnown: false, watchersKnownInMs: answer.knownInMs };
}

export function monitorCommands(monitor: Monitor): AdminCommand[] {
  const state = (): MonitorState => monitor.state;
  /** Watches live in the leader's memory: asked elsewhere, the answer would be empty, not true. */
  const requireLeader = async (): Promise<void> => {
    if (!monitor.isLeader) throw await monitor.notLeaderError();
  };
  const imageOf = (args: AdminArgs): { pool: PoolInfo; image: ImageInfo } => {
    const pool = poolByName(state(), name(args, 'pool'));
    return { pool, image: imageByName(state(), pool, name(args, 'name')) };
  };

  return [
    { name: 'cluster status', summary: 'Health, OSD counts, PG states, epoch', run: () => clusterStatus(monitor) },
    { name: 'map get', summary: 'The whole cluster map', run: () => monitor.map() },
    {
      name: 'pool create',
      summary: 'Create a pool: name, size, minSize, pgNum, failureDomain',
      run: async (args) => {
        const poolName = name(args, 'name');
        const size = int(args, 'size', 1, 10, 3);
        const minSize = int(args, 'minSize', 1, size, Math.max(1, size - 1));
        const pgNum = int(args, 'pgNum', 1, 1 << 20, 128);
        const failureDomain = oneOf(args, 'failureDomain', ['host', 'osd'] as const, 'host');
        let pool: PoolInfo | undefined;
        await monitor.mutate((s) => {
          if ([...s.pools.values()].some((p) => p.name === poolName)) throw new FastblockError(ErrorCode.ALREADY_EXISTS, `pool '${poolName}' already exists`, { pool: poolName });
          pool = { id: s.nextPoolId, name: poolName, size, minSize, pgNum, failureDomain };
          return { change: { pools: [pool], nextPoolId: s.nextPoolId + 1 }, remap: [pool] };
        });
        return { ...pool!, epoch: monitor.state.epoch };
      },
    },
    { name: 'pool ls', summary: 'List pools', run: () => [...state().pools.values()].map((p) => ({ ...p, images: [...state().images.values()].filter((i) => i.pool === p.id).length })) },
    {
      name: 'pool rm',
      summary: 'Remove an empty pool',
      run: async (args) => {
        const poolName = name(args, 'name');
        await monitor.mutate((s) => {
          const pool = poolByName(s, poolName);
          const images = [...s.images.values()].filter((i) => i.pool === pool.id).length;
          if (images > 0) throw new FastblockError(ErrorCode.BUSY, `pool '${poolName}' still holds ${images} image(s); remove them first`, { pool: poolName, images });
          return { change: { removePools: [pool.id] } };
        });
        return { removed: poolName, epoch: monitor.state.epoch };
      },
    },
    {
      name: 'image create',
      summary: 'Create an image: pool, name, sizeBytes, objectSizeBytes',
      run: async (args) => {
        const poolName = name(args, 'pool');
        const imageName = name(args, 'name');
        const sizeBytes = sizeArg(args, 'sizeBytes');
        const objectSizeBytes = int(args, 'objectSizeBytes', 4096, 64 * 2 ** 20, 4 * 2 ** 20);
        if ((objectSizeBytes & (objectSizeBytes - 1)) !== 0) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `objectSizeBytes must be a power of two, got ${objectSizeBytes}`, { arg: 'objectSizeBytes' });
        let image: ImageInfo | undefined;
        await monitor.mutate((s) => {
          const pool = poolByName(s, poolName);
          if ([...s.images.values()].some((i) => i.pool === pool.id && i.name === imageName)) {
            throw new FastblockError(ErrorCode.ALREADY_EXISTS, `image '${imageName}' already exists in pool '${poolName}'`, { pool: poolName, image: imageName });
          }
          image = { id: randomBytes(8).toString('hex'), pool: pool.id, name: imageName, sizeBytes, objectSizeBytes, createdMs: Date.now() };
          return { change: { images: [image] } };
        });
        return { ...image!, epoch: monitor.state.epoch };
      },
    },
    {
      name: 'image ls',
      summary: 'List images (of one pool)',
      run: (args) => {
        const poolName = optionalName(args, 'pool');
        const pool = poolName === undefined ? undefined : poolByName(state(), poolName);
        return [...state().images.values()].filter((i) => !pool || i.pool === pool.id).map((i) => ({ ...i, poolName: state().pools.get(i.pool)?.name }));
      },
    },
    {
      name: 'image info',
      summary: 'One image',
      run: (args) => {
        const pool = poolByName(state(), name(args, 'pool'));
        return { ...imageByName(state(), pool, name(args, 'name')), poolName: pool.name };
      },
    },
    {
      name: 'image resize',
      summary: 'Change an image size',
      run: async (args) => {
        const poolName = name(args, 'pool');
        const imageName = name(args, 'name');
        const sizeBytes = sizeArg(args, 'sizeBytes');
        let resized: ImageInfo | undefined;
        await monitor.mutate((s) => {
          const image = imageByName(s, poolByName(s, poolName), imageName);
          resized = { ...image, sizeBytes };
          return image.sizeBytes === sizeBytes ? undefined : { change: { images: [resized] } };
        });
        return { ...resized!, epoch: monitor.state.epoch };
      },
    },
    {
      name: 'image rm',
      summary: 'Remove an image (refused while clients have it open, unless force; dryRun: only check)',
      run: async (args) => {
        const poolName = name(args, 'pool');
        const imageName = name(args, 'name');
        const force = bool(args, 'force');
        await requireLeader();
        if (bool(args, 'dryRun')) {
          // The CLI asks first: an image still in use must keep its data, not only its name.
          const { image } = imageOf(args);
          if (!force) refuseWatched(`${poolName}/${imageName}`, monitor.watchers.watched(image.id, image.createdMs));
          return { removable: imageName, pool: poolName };
        }
        let removedId: string | undefined;
        await monitor.mutate((s) => {
          const image = imageByName(s, poolByName(s, poolName), imageName);
          if (!force) refuseWatched(`${poolName}/${imageName}`, monitor.watchers.watched(image.id, image.createdMs));
          removedId = image.id;
          return { change: { removeImages: [image.id] } };
        });
        if (removedId !== undefined) monitor.watchers.forget(removedId);
        return { removed: imageName, pool: poolName, epoch: monitor.state.epoch };
      },
    },
    {
      name: 'image status',
      summary: 'An image and who has it open (its watchers)',
      run: async (args) => {
        await requireLeader();
        const { pool, image } = imageOf(args);
        return { ...image, poolName: pool.name, ...watchersReport(monitor.watchers.watched(image.id, image.createdMs)) };
      },
    },
    {
      name: 'image watch',
      summary: 'A client has an image open: register or renew its watch (id, description, leaseMs)',
      run: async (args) => {
        await requireLeader();
        const { image } = imageOf(args);
        const leaseMs = int(args, 'leaseMs', MIN_WATCH_LEASE_MS, MAX_WATCH_LEASE_MS, DEFAULT_WATCH_LEASE_MS);
        const watcher = { id: name(args, 'id'), description: text(args, 'description', 200) };
        const expiresAtMs = monitor.watchers.watch(image.id, watcher, leaseMs);
        return { image: image.id, watcher: watcher.id, leaseMs, expiresAtMs };
      },
    },
    {
      name: 'image unwatch',
      summary: 'A client closed an image: drop its watch (id)',
      run: async (args) => {
        await requireLeader();
        const { image } = imageOf(args);
        return { image: image.id, removed: monitor.watchers.unwatch(image.id, name(args, 'id')) };
      },
    },
    {
      name: 'osd ls',
      summary: 'List OSDs',
      run: () => {
        const view = monitor.pgStatus.view();
        const pgs = [...state().pgs.values()].flat();
        return [...state().osds.values()].map((o) => ({
          ...publicOsd(o),
          autoOut: o.autoOut,
          pgs: pgs.filter((pg) => pg.replicas.some((r) => r.osd === o.id)).length,
          leaders: [...view.values()].filter((v) => v.leaderOsd === o.id).length,
          usage: monitor.capacity.get(o.id) ?? null,
        }));
      },
    },
    ...(['out', 'in'] as const).map((which): AdminCommand => ({
      name: `osd ${which}`,
      summary: which === 'out' ? 'Take an OSD out of placement (its PGs move away)' : 'Put an OSD back into placement',
      run: async (args) => {
        let id = -1;
        await monitor.mutate((s) => {
          const osd = osdById(s, args);
          id = osd.id;
          if (osd.in === (which === 'in') && !osd.autoOut) return undefined;
          return { change: { osds: [{ ...osd, in: which === 'in', autoOut: false }] }, remap: 'all' };
        });
        return { osd: id, in: which === 'in', epoch: monitor.state.epoch };
      },
    })),
    {
      name: 'osd rm',
      summary: 'Remove an OSD that is down and out',
      run: async (args) => {
        let id = -1;
        await monitor.mutate((s) => {
          const osd = osdById(s, args);
          id = osd.id;
          if (osd.up || osd.in) throw new FastblockError(ErrorCode.BUSY, `osd.${osd.id} is ${osd.up ? 'up' : 'in'}; stop it and mark it out first`, { osd: osd.id });
          return { change: { removeOsds: [osd.id] }, remap: 'all' };
        });
        return { removed: id, epoch: monitor.state.epoch };
      },
    },
    ...(['set', 'unset'] as const).map((which): AdminCommand => ({
      name: `osd ${which}`,
      summary: `${which === 'set' ? 'Set' : 'Clear'} a cluster flag (noout)`,
      run: async (args) => {
        oneOf(args, 'flag', ['noout'] as const);
        await monitor.mutate((s) => (s.flags.noout === (which === 'set') ? undefined : { change: { flags: { ...s.flags, noout: which === 'set' } } }));
        return { flags: monitor.state.flags, epoch: monitor.state.epoch };
      },
    })),
    {
      name: 'pg ls',
      summary: 'PGs with replicas, state and leader',
      run: (args) => {
        const poolName = optionalName(args, 'pool');
        const pool = poolName === undefined ? undefined : poolByName(state(), poolName);
        const view = monitor.pgStatus.view();
        return [...state().pgs.values()]
          .flat()
          .filter((pg) => !pool || pg.pool === pool.id)
          .map((pg) => {
            const v = view.get(`${pg.pool}.${pg.index}`);
            return { pg: `${pg.pool}.${pg.index.toString(16)}`, pool: pg.pool, index: pg.index, replicas: pg.replicas, epoch: pg.epoch, state: v?.state ?? 'unknown', leader: v?.leaderOsd ?? -1 };
          });
      },
    },
    {
      name: 'policy set',
      summary: 'Dry-run a policy (kind, name, wasm base64); apply=true activates it as a new version',
      run: async (args) => {
        const kind = oneOf(args, 'kind', KINDS);
        const policyName = name(args, 'name');
        const bytes = base64(args, 'wasm', MAX_POLICY_BYTES);
        return await setPolicy(monitor, kind, policyName, bytes, bool(args, 'apply'));
      },
    },
    {
      name: 'policy ls',
      summary: 'Stored policy versions and the ones in force',
      run: async (args) => {
        const kinds = args.kind === undefined ? KINDS : [oneOf(args, 'kind', KINDS)];
        const out = [];
        for (const kind of kinds) {
          const active = monitor.policies.active(kind);
          out.push({ kind, name: active.name, version: 0, sha256: sha256Hex(monitor.policies.builtin(kind).module.bytes), builtin: true, active: active.version === 0 });
          for (const p of await monitor.repo.policies(kind)) out.push({ kind: p.kind, name: p.name, version: p.version, sha256: p.sha256, createdMs: p.createdMs, bytes: p.bytes.length, builtin: false, active: active.version === p.version });
        }
        return out;
      },
    },
    {
      name: 'policy get',
      summary: 'One stored policy version with its wasm (base64)',
      run: async (args) => {
        const kind = oneOf(args, 'kind', KINDS);
        const { bytes, ...meta } = await getPolicy(monitor, kind, int(args, 'version', 0, 2 ** 31 - 1, monitor.policies.active(kind).version));
        return { ...meta, wasm: Buffer.from(bytes).toString('base64') };
      },
    },
    {
      name: 'policy rollback',
      summary: 'Dry-run going back to an earlier version (default: the one before); apply=true activates it',
      run: async (args) => {
        const kind = oneOf(args, 'kind', KINDS);
        const current = monitor.policies.active(kind).version;
        if (current === 0 && args.version === undefined) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `the built-in ${kind} policy is in force; nothing to roll back`, { kind });
        return await switchPolicy(monitor, kind, bool(args, 'apply'), (stored) => {
          const earlier = stored.filter((p) => p.version < current).at(-1);
          const version = int(args, 'version', 0, 2 ** 31 - 1, earlier?.version ?? 0);
          if (version === 0) return { name: 'builtin', version: 0, bytes: new Uint8Array(), fresh: false };
          const target = stored.find((p) => p.version === version);
          if (!target) throw new FastblockError(ErrorCode.NOT_FOUND, `no ${kind} policy version ${version}`, { kind, version });
          return { name: target.name, version: target.version, bytes: target.bytes, fresh: false };
        });
      },
    },
  ];
}

export function registerMonitorCommands(admin: AdminCommands, monitor: Monitor): () => void {
  const removers = monitorCommands(monitor).map((c) => admin.register(c));
  return () => removers.forEach((remove) => remove());
}
