/**
 * The process write-back-kill.test.ts SIGKILLs: a write-back cache over a file volume whose writes
 * take `delayMs` each, written in a loop (each write awaited), printing "ACK i" after write i is
 * acknowledged. Block of write i: (i * 7919) mod blocks, so blocks are written many times over.
 *
 *   node --import tsx test/kernel/block/write-back-child.ts VOLUME_FILE LOG_PATH CAPACITY DELAY_MS BLOCKS
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { writeSync } from 'node:fs';
import { openWriteBack } from '../../../kernel/block/write-back-volume.js';
import { silentLogger } from '../../../kernel/logger.js';
import type { BlockVolume } from '../../../kernel/contracts/block.js';
import { FileVolume } from '../../vhost/file-volume.js';
import { blockOf, patternOf } from './write-back-pattern.js';

const [volumePath, logPath, capacity, delayMs, blocks] = process.argv.slice(2);
const file = await FileVolume.open('rbd/kill', volumePath!);
const slow: BlockVolume = Object.assign(Object.create(file) as BlockVolume, {
  write: async (offset: number, data: readonly Uint8Array[]) => {
    await sleep(Number(delayMs));
    return file.write(offset, data);
  },
});
const wb = openWriteBack(slow, { path: logPath!, capacityBytes: Number(capacity), log: silentLogger() });
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes `line` to stdout before anything else happens: the parent counts a write acknowledged
 * once it read its ACK. stdout is a non-blocking pipe, so a busy parent (CI) fills it and a write
 * fails with EAGAIN or lands in part; wait and write the rest.
 */
function say(line: string): void {
  const bytes = Buffer.from(line);
  for (let at = 0; at < bytes.length; ) {
    try {
      at += writeSync(1, bytes, at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

for (let i = 0; ; i++) {
  await wb.write(blockOf(i, Number(blocks)) * 4096, [patternOf(i)]);
  say(`ACK ${i}\n`);
}
