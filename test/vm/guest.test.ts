// The VM harness itself, in one boot: the script's exit code and output come back, variables reach
// it, the guest reaches a host 127.0.0.1 server at 10.0.2.2, and host binaries run through 9p.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type AddressInfo } from 'node:net';
import { bootGuest, userNet, vmSkipReason } from '../support/vm.js';

const skip = vmSkipReason();

test('a guest runs a script and reports its exit code, output and the host it reached', async () => {
  if (skip) return console.log(`SKIP ${skip}`);
  const server = createServer((socket) => socket.once('data', (data) => socket.end(`pong ${data.toString().trim()}\n`)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    const result = await bootGuest({
      devices: userNet(),
      hostfs: true,
      env: { GREETING: "it's here", PORT: port },
      script: `
        echo "greeting: $GREETING"
        echo "reply: $(echo ping | nc 10.0.2.2 $PORT)"
        host fio --version
        exit 3
      `,
      timeoutMs: 90_000,
    });
    assert.is(result.exitCode, 3, result.console);
    assert.match(result.output, "greeting: it's here");
    assert.match(result.output, 'reply: pong ping');
    assert.match(result.output, /^fio-\d/m);
    assert.is(result.timedOut, false);
  } finally {
    server.close();
  }
});

test.run();
