/**
 * Child process of embedded-crash.test.ts: commits transactions as fast as it can and prints
 * "ack N" after each one resolves, until it is killed. Each transaction writes the same counter
 * to two keys, plus a large value so that a write takes long enough to be interrupted.
 */
import { EmbeddedMetaStore } from '../../services/monitor/store/embedded-store.js';

const path = process.argv[2];
const store = await EmbeddedMetaStore.open(path);
const start = Number(new TextDecoder().decode((await store.get('a'))?.value ?? new TextEncoder().encode('0')));
const filler = new Uint8Array(256 * 1024).fill(7);
for (let n = start + 1; ; n++) {
  const value = new TextEncoder().encode(String(n));
  await store.txn([], [
    { type: 'put', key: 'a', value },
    { type: 'put', key: 'filler', value: filler.map((_, i) => (i + n) & 0xff) },
    { type: 'put', key: 'b', value },
  ]);
  process.stdout.write(`ack ${n}\n`);
}
