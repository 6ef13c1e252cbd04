/**
 * Placement of 100,000 PGs over 1,000 OSDs on 50 hosts, size 3, by the built-in policy:
 *   - through the sandbox, as the monitor runs it (worker start, encode, validate included);
 *   - its compute alone, as WASM in this thread and as the same AssemblyScript source run as plain
 *     TypeScript (assemblyscript/std/portable supplies i32()/f64()): the ratio wasm_vs_ts.
 * Then one OSD out and one host out: PGs moved over PGs that had a replica there.
 *
 *   npm run bench -- placement
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { instantiateSync } from '@assemblyscript/loader';
import { encodePlacementInput, osdOrder } from '../../plugins/placement/abi.js';
import { builtinPolicyBytes } from '../../plugins/placement/builtin.js';
import { WasmPlacementPolicy } from '../../plugins/placement/wasm-policy.js';
import { wasm } from '../../plugins/placement/webassembly.js';
import { input, makeOsds, makePool, markOut, maxOverMean, movedPgs, pgsPerOsd, pgsTouching } from '../../test/placement/cluster.js';

const HOSTS = 50;
const OSDS_PER_HOST = 20;
const SHARDS = 4;
const PGS = 100_000;
const ROUNDS = 3;

interface PortableCalculator {
  Cluster: new (osdCount: number, domainCount: number) => { setOsd(i: number, d: number, s: number, w: number, f: number): void };
  computePlacement(cluster: unknown, pgNum: number, size: number, hostDomains: boolean, previous: unknown): unknown;
}

function best(samples: number[]): number {
  return Math.min(...samples);
}

function timeMs(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const osds = makeOsds(HOSTS, OSDS_PER_HOST, SHARDS);
const pool = makePool(PGS);
const bytes = builtinPolicyBytes('placement');
const policy = new WasmPlacementPolicy('builtin-calculator', 1, bytes, { timeoutMs: 60_000, memoryPages: 8192 });

// 1. Sandboxed, end to end.
const sandboxed: number[] = [];
let mapping = await policy.place(input(pool, osds));
for (let i = 0; i < ROUNDS; i++) {
  const t0 = performance.now();
  mapping = await policy.place(input(pool, osds));
  sandboxed.push(performance.now() - t0);
}

// 2. Compute only: WASM in this thread (fresh instance per round: the stub runtime never frees).
const words = encodePlacementInput(input(pool, osds), osdOrder(osds));
const module = new wasm.Module(bytes);
const wasmMs: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const { exports } = instantiateSync<Record<string, unknown>>(module, {});
  const alloc = exports.fastblock_alloc as (n: number) => number;
  const place = exports.fastblock_place as (p: number) => number;
  const memory = exports.memory as { buffer: ArrayBuffer };
  const at = alloc(words.byteLength);
  new Int32Array(memory.buffer, at, words.length).set(words);
  wasmMs.push(timeMs(() => place(at)));
}

// 3. The same source as TypeScript.
// Defines the AssemblyScript conversion globals (i32, f64, ...) the portable source calls.
const portableStd: string = 'assemblyscript/std/portable/index.js';
await import(portableStd);
const calculatorUrl = pathToFileURL(fileURLToPath(new URL('../../policies/placement/calculator.ts', import.meta.url))).href;
const calc = (await import(calculatorUrl)) as PortableCalculator;
const tsMs: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const cluster = new calc.Cluster(osds.length, HOSTS);
  osds.forEach((o, idx) => cluster.setOsd(idx, Math.floor(o.id / OSDS_PER_HOST), o.shards, o.weight, 3));
  tsMs.push(timeMs(() => calc.computePlacement(cluster, PGS, 3, true, null)));
}

// 4. Movement.
const oneOut = markOut(osds, (o) => o.id === 17);
const afterOsd = await policy.place(input(pool, oneOut, mapping));
const hostOut = markOut(osds, (o) => o.host === 'host-7');
const afterHost = await policy.place(input(pool, hostOut, mapping));
const movedOsd = movedPgs(mapping, afterOsd) / pgsTouching(mapping, (id) => id === 17);
const movedHost = movedPgs(mapping, afterHost) / pgsTouching(mapping, (id) => hostOut.find((o) => o.id === id)!.host === 'host-7');

const figures = {
  seconds_100k_pgs_1000_osds: +(best(sandboxed) / 1000).toFixed(4),
  seconds_wasm_compute: +(best(wasmMs) / 1000).toFixed(4),
  seconds_ts_compute: +(best(tsMs) / 1000).toFixed(4),
  max_over_mean_pgs_per_osd: +maxOverMean(mapping, osds).toFixed(4),
  max_over_min_pgs_per_osd: +(Math.max(...pgsPerOsd(mapping).values()) / Math.min(...pgsPerOsd(mapping).values())).toFixed(4),
  moved_ratio_one_osd_out: +movedOsd.toFixed(4),
  moved_ratio_one_host_out: +movedHost.toFixed(4),
};
console.log(`sandboxed ms: ${sandboxed.map((x) => x.toFixed(0)).join(' ')}; wasm ms: ${wasmMs.map((x) => x.toFixed(0)).join(' ')}; ts ms: ${tsMs.map((x) => x.toFixed(0)).join(' ')}`);
console.log(JSON.stringify({ bench: 'placement', figures, ratios: { wasm_vs_ts: +(best(tsMs) / best(wasmMs)).toFixed(3) } }));
