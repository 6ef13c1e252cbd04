// @slow
// The embedded store under kill -9: a writer process is SIGKILLed at random instants, many times;
// every reopen finds the old or the new state of the transaction in flight, never a mix, and never
// loses an acknowledged one. A file damaged some other way is refused, not half-read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EmbeddedMetaStore } from '../../services/monitor/store/embedded-store.js';

const dir = mkdtempSync(join(tmpdir(), 'fastblock-crash-'));
const path = join(dir, 'meta.json');
const writer = fileURLToPath(new URL('./embedded-writer.ts', import.meta.url));
const text = (b: Uint8Array | undefined): number => Number(new TextDecoder().decode(b ?? new Uint8Array()));

test.after(() => rmSync(dir, { recursive: true, force: true }));

function runAndKill(afterAcks: number, extraDelayMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', writer, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    let acked = 0;
    let seen = 0;
    let killed = false;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) {
        const m = /^ack (\d+)$/.exec(line);
        if (!m) continue;
        acked = Number(m[1]);
        if (++seen === afterAcks && !killed) {
          killed = true;
          setTimeout(() => process.kill(child.pid!, 'SIGKILL'), extraDelayMs);
        }
      }
    });
    child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve(acked) : reject(new Error(`writer exited ${code ?? signal}`))));
  });
}

test('kill -9 at random points: old or new state, never torn, nothing acknowledged lost', async () => {
  for (let round = 0; round < 10; round++) {
    const acked = await runAndKill(1 + (round % 3), Math.floor(Math.random() * 12));
    const store = await EmbeddedMetaStore.open(path);
    const a = text((await store.get('a'))?.value);
    const b = text((await store.get('b'))?.value);
    const filler = (await store.get('filler'))?.value;
    assert.is(a, b, `round ${round}: keys of one transaction disagree`);
    assert.ok(a >= acked, `round ${round}: acknowledged ${acked} but found ${a}`);
    assert.ok(a <= acked + 1, `round ${round}: found ${a}, beyond the one in flight`);
    assert.is(filler?.[0], a & 0xff, `round ${round}: filler from another transaction`);
    await store.close();
  }
});

test('a damaged file is refused with CORRUPT; a leftover temp file is ignored', async () => {
  writeFileSync(`${path}.tmp`, 'half a write');
  const store = await EmbeddedMetaStore.open(path);
  await store.close();
  const good = readFileSync(path, 'utf8');
  writeFileSync(path, good.slice(0, good.length - 10));
  let error: Error | undefined;
  await EmbeddedMetaStore.open(path).catch((err: Error) => (error = err));
  assert.match(error?.message ?? '', /fails its checksum/);
});

test.run();
