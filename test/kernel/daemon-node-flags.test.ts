import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { DAEMON_NODE_FLAGS } from '../../cli/daemon-node-flags.js';

test('bin/fastblockd.js starts node with the daemon node flags (a shebang cannot import them)', () => {
  const shebang = readFileSync(new URL('../../bin/fastblockd.js', import.meta.url), 'utf8').split('\n')[0]!;
  assert.is(shebang, `#!/usr/bin/env -S node ${DAEMON_NODE_FLAGS.join(' ')}`);
});

test.run();
