/**
 * The daemon's /metrics endpoint: Prometheus text exposition of its registry over plain HTTP on
 * `metrics.listen`. Scrapes are rare (every 10-60 s) and read-only, so node:http is enough; the
 * registry's collect() callbacks run per scrape, never per I/O.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { formatAddress } from '../address.js';
import type { MetricsRegistry } from '../contracts/metrics.js';
import type { NetAddress } from '../contracts/transport.js';
import { ErrorCode, FastblockError } from '../errors.js';

export interface MetricsServer {
  /** The bound address (the real port when 0 was asked). */
  readonly address: NetAddress;
  readonly url: string;
  close(): Promise<void>;
}

const WHY: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the port is in use by another process; pick another port',
  EADDRNOTAVAIL: 'no interface of this machine has that address',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name does not resolve',
};

export async function startMetricsServer(registry: MetricsRegistry, listen: NetAddress, logger: Logger): Promise<MetricsServer> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('fastblock serves Prometheus metrics at /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(request.method === 'HEAD' ? undefined : text),
      (err: unknown) => {
        logger.warn({ err }, 'collecting metrics failed');
        response.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  });
  // Slow or idle scrapers must not pin sockets open forever.
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 65_000;
  await listenOn(server, listen);
  const bound = server.address() as AddressInfo;
  const address = { host: listen.host, port: bound.port };
  return {
    address,
    url: `http://${formatAddress(address)}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function listenOn(server: Server, listen: NetAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'EUNKNOWN';
      const text = formatAddress(listen);
      reject(new FastblockError(ErrorCode.CONFIG_INVALID, `metrics.listen ${text}: cannot listen (${code}): ${WHY[code] ?? err.message}`, { listen: text, code }));
    });
    server.listen(listen.port, listen.host, () => resolve());
  });
}
