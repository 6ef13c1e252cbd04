/**
 * npm run sim -- --seeds N [--from S]   runs N seeds and prints one line per seed
 * npm run sim -- --seed S [--trace]     replays one seed (same seed, same hash)
 */
import { Command } from 'commander';
import { runSeed } from './simulation.js';

const program = new Command('sim')
  .description('deterministic multi-raft simulation')
  .option('--seeds <n>', 'number of seeds to run', (v) => parseInt(v, 10), 100)
  .option('--from <s>', 'first seed', (v) => parseInt(v, 10), 0)
  .option('--seed <s>', 'replay one seed', (v) => parseInt(v, 10))
  .option('--duration <ms>', 'virtual milliseconds of faults before healing', (v) => parseInt(v, 10))
  .option('--trace', 'print the event trace of the seed')
  .parse();

const opts = program.opts<{ seeds: number; from: number; seed?: number; duration?: number; trace?: boolean }>();
const seeds = opts.seed !== undefined ? [opts.seed] : Array.from({ length: opts.seeds }, (_, i) => opts.from + i);
let failed = 0;
const started = Date.now();
for (const seed of seeds) {
  const result = runSeed({ seed, durationMs: opts.duration, trace: opts.trace });
  if (opts.trace) for (const line of result.traceLines) console.log(line);
  const ok = result.violations.length === 0;
  if (!ok) failed++;
  console.log(`seed ${seed} ${ok ? 'ok' : 'FAIL'} hash=${result.hash} ${JSON.stringify(result.stats)}`);
  for (const v of result.violations) console.log(`  ${v}\n  replay: npm run sim -- --seed ${seed} --trace`);
}
console.log(`${seeds.length - failed}/${seeds.length} seeds ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed === 0 ? 0 : 1);
