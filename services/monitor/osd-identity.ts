/**
 * An OSD's identity on its own disk: a uuid created once with the data directory, and the id the
 * monitor allocated at the first boot. Boot with `osdId` (or -1 before the first boot) and `uuid`;
 * save the id the monitor answers. Written atomically (temp file, fsync, rename) so a crash never
 * leaves an OSD without the id it already registered under; the uuid makes a lost write harmless
 * anyway (the monitor answers the same id for the same uuid).
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

export interface OsdIdentity {
  readonly uuid: string;
  /** -1 until the monitor allocated one. */
  readonly osdId: number;
}

const FILE = 'osd-identity.json';

export async function loadOsdIdentity(dataDir: string): Promise<OsdIdentity> {
  try {
    const parsed = JSON.parse(await readFile(join(dataDir, FILE), 'utf8')) as Partial<OsdIdentity>;
    if (typeof parsed.uuid !== 'string' || !Number.isInteger(parsed.osdId)) throw new Error('missing uuid or osdId');
    return { uuid: parsed.uuid, osdId: parsed.osdId! };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new FastblockError(ErrorCode.CORRUPT, `${join(dataDir, FILE)} is unreadable: ${(err as Error).message}`, { dataDir }, { cause: err });
    }
  }
  const identity = { uuid: randomUUID(), osdId: -1 };
  await saveOsdIdentity(dataDir, identity);
  return identity;
}

export async function saveOsdIdentity(dataDir: string, identity: OsdIdentity): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, FILE);
  const file = await open(`${path}.tmp`, 'w');
  try {
    await file.writeFile(JSON.stringify(identity));
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(`${path}.tmp`, path);
}
