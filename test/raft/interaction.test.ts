/**
 * Data-driven interaction tests: every test/raft/testdata/*.txt is a script with golden output
 * (multi-*.txt run against MultiRaft nodes, the others against bare RaftGroups).
 * FASTBLOCK_REWRITE=1 rewrites the goldens from the actual output (review the diff!); without it
 * a mismatch fails and shows both.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InteractionEnv } from './harness/env.js';
import { MultiEnv } from './harness/multi-env.js';
import { parseScript, renderScript } from './harness/script.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const rewrite = process.env.FASTBLOCK_REWRITE === '1';

for (const file of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
  test(file.replace(/\.txt$/, ''), () => {
    const path = join(dir, file);
    const cases = parseScript(readFileSync(path, 'utf8'));
    // Scripts named multi-* drive MultiRaft nodes; the others drive bare RaftGroups.
    const env = file.startsWith('multi-') ? new MultiEnv() : new InteractionEnv();
    const results: { comments: string[]; input: string; actual: string }[] = [];
    for (const c of cases) {
      const actual = env.run(c.command, c.positional, c.args) || 'ok';
      results.push({ comments: c.comments, input: c.input, actual });
      if (!rewrite) assert.fixture(actual, c.expected, `${file}:${c.line}: ${c.input}`);
    }
    if (rewrite) writeFileSync(path, renderScript(results));
  });
}

test.run();
