// A write-back cache's acknowledged writes survive SIGKILL of the process that acknowledged them:
// a child writes through a write-back cache whose volume (a file) is slow, so records pile up, the
// ring wraps and writes wait for space; the test kills it at several points, reopens the log over
// the same file (the replay writes back what the child acknowledged), and every block holds the
// last write to it that the child acknowledged (the one write it may have had in flight may or may
// not be there).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openWriteBack } from '../../../kernel/block/write-back-volume.js';
import { silentLogger } from '../../../kernel/logger.js';
import { FileVolume } from '../../vhost/file-volume.js';
import { blockOf, patternOf } from './write-back-pattern.js';

const CHILD = fileURLToPath(new URL('./write-back-child.ts', import.meta.url));
const BLOCKS = 300;
const CAPACITY = 1024 * 1024;

/** Runs the child until it has acknowledged `acks` writes, then SIGKILLs it; the last ACK it printed. */
function runAndKill(volumePath: string, logPath: string, acks: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, volumePath, logPath, String(CAPACITY), '20', String(BLOCKS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let last = -1;
    let buffered = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) last = Number(line.slice(4));
      if (last >= acks && child.exitCode === null && !child.killed) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(last);
      else reject(new Error(`child exited ${code}: ${stderr}`));
    });
  });
}

test('every acknowledged write is in the volume after a SIGKILL and a replay, kill after kill', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-wb-kill-'));
  try {
    const volumePath = join(dir, 'volume');
    const logPath = join(dir, 'rbd%2Fkill.wblog');
    writeFileSync(volumePath, '');
    truncateSync(volumePath, BLOCKS * 4096);
    // Each run starts where the previous left off: its open replays the previous run's log first.
    // The expected content therefore follows one numbering across runs: run r writes i = 0.. again,
    // so the check is per run, after the replay of that run's log.
    for (const acks of [150, 900, 2500]) {
      const last = await runAndKill(volumePath, logPath, acks);
      assert.ok(last >= acks, `the child acknowledged ${last} writes`);
      const file = await FileVolume.open('rbd/kill', volumePath);
      const wb = openWriteBack(file, { path: logPath, capacityBytes: CAPACITY, log: silentLogger() });
      const replayed = wb.stats().replayed;
      await wb.flush();
      let wrong = 0;
      const expected = new Map<number, number>();
      for (let i = 0; i <= last; i++) expected.set(blockOf(i, BLOCKS), i);
      const maybe = blockOf(last + 1, BLOCKS);
      for (const [block, i] of expected) {
        const bytes = await wb.read(block * 4096, 4096);
        const ok = Buffer.compare(Buffer.from(bytes), Buffer.from(patternOf(i))) === 0;
        const inFlight = block === maybe && Buffer.compare(Buffer.from(bytes), Buffer.from(patternOf(last + 1))) === 0;
        if (!ok && !inFlight) wrong++;
      }
      assert.is(wrong, 0, `${wrong} blocks lost acknowledged writes (killed after ${last}, replayed ${replayed} records)`);
      assert.ok(replayed > 0, 'the kill left records to replay');
      await wb.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
