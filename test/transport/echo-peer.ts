/**
 * A transport server in its own process (or worker thread), for tests that need a real peer to
 * kill or to run elsewhere. Method 1 echoes header and payload; method 2 never answers.
 * Prints {"port": N} on stdout once listening.
 *   node --import tsx test/transport/echo-peer.ts [PORT] [SHARD]
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { InboundHandler, Transport, TransportRecipe } from '../../kernel/contracts/transport.js';

export const ECHO = 1;
export const NEVER = 2;

export const echoHandler: InboundHandler = {
  onRequest(_connection, message) {
    if (message.method === NEVER) return new Promise(() => {});
    return { header: message.header, payload: [message.payload] };
  },
  onMessage(connection, message) {
    connection.send(message.method, message.header, [message.payload]);
  },
};

async function main(): Promise<void> {
  let transport: Transport;
  if (!isMainThread && workerData?.recipe) {
    const recipe = workerData.recipe as TransportRecipe;
    const module = (await import(recipe.module)) as { createTransport(options: TransportRecipe['options']): Transport };
    transport = module.createTransport(recipe.options);
  } else {
    const { TcpTransport } = await import('../../plugins/transport-tcp/tcp-transport.js');
    const { silentLogger } = await import('../../kernel/logger.js');
    transport = new TcpTransport({}, silentLogger());
  }
  const port = Number(isMainThread ? process.argv[2] ?? 0 : workerData.port ?? 0);
  const shard = Number(isMainThread ? process.argv[3] ?? 0 : workerData.shard ?? 0);
  const listener = await transport.listen({ host: '127.0.0.1', port }, echoHandler, { shard });
  if (isMainThread) process.stdout.write(JSON.stringify({ port: listener.address.port }) + '\n');
  else parentPort!.postMessage({ port: listener.address.port });
  parentPort?.on('message', async (message) => {
    if (message === 'close') {
      await transport.close();
      parentPort!.close();
    }
  });
}

const entry = process.argv[1] ?? '';
if (!isMainThread || entry.endsWith('echo-peer.ts') || entry.endsWith('echo-peer.js')) await main();
