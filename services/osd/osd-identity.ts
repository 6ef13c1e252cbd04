/**
 * The OSD's identity on its disk: the id the monitor allocated at first boot and a uuid that
 * lets the monitor tell a returning OSD from a new one. Written atomically (write, fsync, rename).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

export interface OsdIdentity {
  /** -1 until the monitor has allocated one. */
  readonly osdId: number;
  readonly uuid: string;
}

export async function readIdentity(dataDir: string): Promise<OsdIdentity> {
  const path = join(dataDir, 'osd.json');
  if (!existsSync(path)) return { osdId: -1, uuid: randomUUID() };
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<OsdIdentity>;
    if (typeof parsed.osdId !== 'number' || typeof parsed.uuid !== 'string') throw new Error('missing osdId or uuid');
    return { osdId: parsed.osdId, uuid: parsed.uuid };
  } catch (err) {
    throw new FastblockError(ErrorCode.CORRUPT, `OSD identity file ${path} is unreadable: ${(err as Error).message}`, { path });
  }
}

export async function writeIdentity(dataDir: string, identity: OsdIdentity): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, 'osd.json');
  const temp = `${path}.tmp`;
  const file = await open(temp, 'w');
  try {
    await file.writeFile(JSON.stringify(identity) + '\n');
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
}
