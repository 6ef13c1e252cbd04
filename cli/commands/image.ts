/** `fastblock image create|ls|info|status|resize|rm`. Images are named POOL/NAME. */
import type { Command } from 'commander';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import type { MonitorClient } from '../../services/monitor/client.js';
import { releaseObjects } from './image-release.js';
import { action, commandGroup, formatSize, imageSpec, parseSize, print, requireYes, table, withCommonOptions, withMonitors, type CommonOptions } from './monitor-admin.js';

interface ImageRow {
  id: string;
  pool: number;
  poolName?: string;
  name: string;
  sizeBytes: number;
  objectSizeBytes: number;
  createdMs: number;
}

interface WatcherRow {
  id: string;
  description: string;
  expiresInMs: number;
}

/**
 * Whether the monitor would remove the image now (BUSY while clients have it open). Right after a
 * monitor election it cannot know yet; it says how long until it can, and we wait that out once.
 */
async function removable(monitors: MonitorClient, target: { pool: string; name: string }, force: boolean, json: boolean): Promise<void> {
  try {
    await monitors.admin('image rm', { ...target, force, dryRun: true });
  } catch (err) {
    const waitMs = isFastblockError(err, ErrorCode.BUSY) ? err.context.watchersKnownInMs : undefined;
    if (typeof waitMs !== 'number') throw err;
    if (!json) process.stderr.write(`waiting ${Math.ceil(waitMs / 1000)} s for clients to re-register with the new leader monitor\n`);
    await new Promise((resolve) => setTimeout(resolve, waitMs + 500));
    await monitors.admin('image rm', { ...target, force, dryRun: true });
  }
}

function describe(i: ImageRow): string {
  return [
    `image     ${i.poolName ?? i.pool}/${i.name}`,
    `id        ${i.id}`,
    `size      ${formatSize(i.sizeBytes)} (${i.sizeBytes} bytes)`,
    `objects   ${Math.ceil(i.sizeBytes / i.objectSizeBytes)} of ${formatSize(i.objectSizeBytes)}`,
    `created   ${new Date(i.createdMs).toISOString()}`,
  ].join('\n');
}

export function registerImage(program: Command): void {
  const image = commandGroup(program, 'image', 'create, list, inspect, resize and remove images');
  withCommonOptions(image.command('create <pool/name>').description('create an image'))
    .requiredOption('--size <size>', 'image size: 10G, 512M, ...')
    .option('--object-size <size>', 'object size (a power of two)', '4M')
    .action(
      action(async (spec: string, o: CommonOptions & { size: string; objectSize: string }) => {
        const { pool, name } = imageSpec(spec);
        const args = { pool, name, sizeBytes: parseSize(o.size, '--size'), objectSizeBytes: parseSize(o.objectSize, '--object-size') };
        const created = (await withMonitors(o, (m) => m.admin('image create', args))) as ImageRow;
        print(o, created, (i) => `image '${pool}/${i.name}' created: ${formatSize(i.sizeBytes)}, id ${i.id}`);
      }),
    );
  withCommonOptions(image.command('ls [pool]').description('list images')).action(
    action(async (pool: string | undefined, o: CommonOptions) => {
      const rows = (await withMonitors(o, (m) => m.admin('image ls', pool === undefined ? {} : { pool }))) as ImageRow[];
      print(o, rows, (list) =>
        list.length === 0 ? 'no images' : table([['IMAGE', 'SIZE', 'OBJECT', 'ID'], ...list.map((i) => [`${i.poolName}/${i.name}`, formatSize(i.sizeBytes), formatSize(i.objectSizeBytes), i.id])]),
      );
    }),
  );
  withCommonOptions(image.command('info <pool/name>').description('show one image')).action(
    action(async (spec: string, o: CommonOptions) => {
      const info = (await withMonitors(o, (m) => m.admin('image info', imageSpec(spec)))) as ImageRow;
      print(o, info, describe);
    }),
  );
  withCommonOptions(image.command('resize <pool/name>').description('grow or shrink an image'))
    .requiredOption('--size <size>', 'new size: 20G, ...')
    .option('--yes', 'allow shrinking (data past the new end is lost)')
    .action(
      action(async (spec: string, o: CommonOptions & { size: string; yes?: boolean }) => {
        const target = imageSpec(spec);
        const sizeBytes = parseSize(o.size, '--size');
        let before = 0;
        const resized = (await withMonitors(o, async (m) => {
          const current = (await m.admin('image info', target)) as ImageRow;
          before = current.sizeBytes;
          if (sizeBytes < current.sizeBytes) requireYes(o.yes, `shrinking '${spec}' from ${formatSize(current.sizeBytes)} to ${formatSize(sizeBytes)} discards its end`);
          return await m.admin('image resize', { ...target, sizeBytes });
        })) as ImageRow;
        // The end goes after the size: clients stop writing past the new end as the map reaches
        // them, and a later grow shows zeroes there, not the old bytes.
        const objectsReleased = await releaseObjects(o, spec, sizeBytes, before, 'releasing the end');
        print(o, { ...resized, objectsReleased }, (i) => `image '${spec}' is now ${formatSize(i.sizeBytes)}`);
      }),
    );
  withCommonOptions(image.command('status <pool/name>').description('an image and the clients that have it open (its watchers)')).action(
    action(async (spec: string, o: CommonOptions) => {
      const status = (await withMonitors(o, (m) => m.admin('image status', imageSpec(spec)))) as ImageRow & { watchers: WatcherRow[]; watchersKnown: boolean; watchersKnownInMs?: number };
      print(o, status, (s) =>
        [
          describe(s),
          !s.watchersKnown
            ? `watchers  unknown for ${Math.ceil((s.watchersKnownInMs ?? 0) / 1000)} s more (a new leader monitor: clients are re-registering)`
            : s.watchers.length === 0
              ? 'watchers  none'
              : `watchers\n${table([['ID', 'CLIENT', 'LEASE LEFT'], ...s.watchers.map((w) => [w.id, w.description, `${Math.ceil(w.expiresInMs / 1000)}s`])])}`,
        ].join('\n'),
      );
    }),
  );
  withCommonOptions(image.command('rm <pool/name>').description('remove an image and release its objects (refused while a client has it open)'))
    .option('--yes', 'really remove it')
    .option('--force', 'remove it even while clients have it open (their I/O will fail)')
    .action(
      action(async (spec: string, o: CommonOptions & { yes?: boolean; force?: boolean }) => {
        const target = imageSpec(spec);
        requireYes(o.yes, `removing image '${spec}' cannot be undone`);
        const force = o.force === true;
        const info = (await withMonitors(o, (m) => m.admin('image info', target))) as ImageRow;
        await withMonitors(o, (m) => removable(m, target, force, o.json === true));
        // Data first, then the name: an rm cut short leaves the image listed, and rm again ends it.
        const objectsReleased = await releaseObjects(o, spec, 0, info.sizeBytes, 'releasing');
        const result = (await withMonitors(o, (m) => m.admin('image rm', { ...target, force }))) as Record<string, unknown>;
        print(o, { ...result, objectsReleased }, () => `image '${spec}' removed (${objectsReleased} objects released)`);
      }),
    );
}
