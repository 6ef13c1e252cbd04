/**
 * Releases an image's objects from the CLI, with a progress bar on a terminal: `image rm` releases
 * every object before it drops the image from the map (an interrupted rm leaves the image there,
 * so running it again finishes the job), and a shrink releases the end it cut off.
 */
import cliProgress from 'cli-progress';
import { connect } from '../../client/connect.js';
import { objectsInRange, trimImage } from '../../client/image-trim.js';
import type { CommonOptions } from './monitor-admin.js';

/** Discards image bytes [from, to) of `spec` as the newest map describes it; the objects touched. */
export async function releaseObjects(options: CommonOptions, spec: string, from: number, to: number, label: string): Promise<number> {
  if (to <= from) return 0;
  const client = await connect({ monitors: options.addr.split(',').map((s) => s.trim()).filter(Boolean), name: 'fastblock-cli' });
  const bar = options.json || !process.stderr.isTTY
    ? undefined
    : new cliProgress.SingleBar({ format: ` ${label} {bar} {percentage}% | {value}/{total} objects | {eta_formatted} left`, stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
  try {
    const image = await client.imageInfo(spec);
    bar?.start(objectsInRange(image, from, to), 0);
    const result = await trimImage(client, image, from, to, { onProgress: (done) => bar?.update(done) });
    return result.objects;
  } finally {
    bar?.stop();
    await client.close();
  }
}
