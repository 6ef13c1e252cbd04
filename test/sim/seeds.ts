/** Runs a range of simulator seeds as uvu tests; a failure names the seed and its replay command. */
import { test } from 'uvu';
import { runSeed } from './simulation.js';

export function seedSuite(from: number, count: number, durationMs: number): void {
  const hashes: string[] = [];
  test(`seeds ${from}..${from + count - 1} keep every safety property and converge after healing`, () => {
    const failures: string[] = [];
    for (let seed = from; seed < from + count; seed++) {
      const result = runSeed({ seed, durationMs });
      hashes.push(result.hash);
      if (result.violations.length > 0) {
        failures.push(`seed ${seed}: ${result.violations.join('; ').slice(0, 2000)}\n  replay: npm run sim -- --seed ${seed} --duration ${durationMs} --trace`);
      }
    }
    if (failures.length > 0) throw new Error(`${failures.length} seed(s) failed:\n${failures.join('\n')}`);
  });
  test.run();
}
