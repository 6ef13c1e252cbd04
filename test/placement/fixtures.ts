/**
 * Policy modules for the sandbox and hot-swap suites, compiled from AssemblyScript at test time
 * (cached under .fastblock-test/policy-fixtures by source hash; the compiler takes seconds to load,
 * so it is imported only on a cache miss). Each one breaks a different rule.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cacheDir = join(root, '.fastblock-test', 'policy-fixtures');
const calculator = join(root, 'policies', 'placement', 'calculator');

const ABI = `
export function fastblock_policy_abi(): i32 { return 1; }
export function fastblock_policy_kind(): i32 { return 1; }
export function fastblock_alloc(bytes: i32): usize { return heap.alloc(<usize>bytes); }
function word(base: usize, i: i32): i32 { return load<i32>(base + ((<usize>i) << 2)); }
`;

export const FIXTURES = {
  /** Never returns. */
  loop: `${ABI}
let spins: i32 = 0;
export function fastblock_place(input: usize): usize {
  while (word(input, 0) != 0x7eadbeef) { spins++; store<i32>(input + 28, spins); }
  return input;
}`,
  /** Allocates until memory runs out. */
  memoryBomb: `${ABI}
export function fastblock_place(input: usize): usize {
  let last: usize = 0;
  for (;;) { last = heap.alloc(1 << 20); store<i32>(last, word(input, 1)); }
  return last;
}`,
  /** Traps on its first instruction. */
  trap: `${ABI}
export function fastblock_place(input: usize): usize { unreachable(); return input; }`,
  /** Returns a well-formed map that puts every replica of every PG on OSD index 0. */
  invalidMap: `${ABI}
export function fastblock_place(input: usize): usize {
  const pgNum = word(input, 1); const size = word(input, 2);
  const out = heap.alloc(<usize>((4 + pgNum * (1 + size)) << 2));
  store<i32>(out, 1); store<i32>(out + 4, 0); store<i32>(out + 8, pgNum); store<i32>(out + 12, size);
  for (let i = 0; i < pgNum * (1 + size); i++) store<i32>(out + 16 + (<usize>i << 2), 0);
  return out;
}`,
  /** Valid WebAssembly, but no policy ABI. */
  notAPolicy: `export function add(a: i32, b: i32): i32 { return a + b; }`,
  /** A valid placement policy that ignores the previous mapping (so a swap to it moves PGs). */
  forgetful: `${ABI}
import { Cluster, computePlacement } from '@CALCULATOR@';
export function fastblock_place(input: usize): usize {
  const pgNum = word(input, 1); const size = word(input, 2); const osdCount = word(input, 4);
  const cluster = new Cluster(osdCount, word(input, 5));
  for (let i = 0; i < osdCount; i++) {
    const at = 8 + i * 4;
    // Reversed weights order of ties: a different but valid layout.
    cluster.setOsd(osdCount - 1 - i, word(input, at), word(input, at + 1), f64(word(input, at + 2)) / 1000, word(input, at + 3));
  }
  const m = computePlacement(cluster, pgNum, size, word(input, 3) == 1, null);
  const out = heap.alloc(<usize>((4 + pgNum * (1 + size)) << 2));
  store<i32>(out, 1); store<i32>(out + 4, 0); store<i32>(out + 8, pgNum); store<i32>(out + 12, size);
  let o: usize = out + 16;
  for (let pg = 0; pg < pgNum; pg++) {
    store<i32>(o, m.shards[pg]); o += 4;
    for (let k = 0; k < size; k++) { const s = m.slots[pg * size + k]; store<i32>(o, s < 0 ? -1 : osdCount - 1 - s); o += 4; }
  }
  return out;
}`,
} as const;

export type FixtureName = keyof typeof FIXTURES;

/** Compiles (or reads from the cache) one fixture; returns its wasm bytes. */
export async function fixture(name: FixtureName): Promise<Uint8Array> {
  mkdirSync(cacheDir, { recursive: true });
  const source = FIXTURES[name].replace('@CALCULATOR@', relative(cacheDir, calculator));
  const hash = createHash('sha256').update(source);
  if (source.includes(relative(cacheDir, calculator))) hash.update(readFileSync(`${calculator}.ts`));
  const key = hash.digest('hex').slice(0, 16);
  const wasmPath = join(cacheDir, `${name}-${key}.wasm`);
  if (!existsSync(wasmPath)) {
    const { default: asc } = await import('assemblyscript/asc');
    const sourcePath = join(cacheDir, `${name}-${key}.ts`);
    writeFileSync(sourcePath, source);
    // Suites run in parallel: compile to a private name, then rename into place atomically.
    const partial = `${wasmPath}.${process.pid}`;
    const { error, stderr } = await asc.main([sourcePath, '-o', partial, '-O3', '--runtime', 'stub', '--noAssert']);
    if (error) throw new Error(`fixture ${name} did not compile: ${stderr.toString()}`);
    renameSync(partial, wasmPath);
  }
  return new Uint8Array(readFileSync(wasmPath));
}
