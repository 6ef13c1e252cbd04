/**
 * connect(): the library's front door. Subscribes to the cluster map on the monitors and returns a
 * ClusterClient that opens images.
 *
 *   const cluster = await connect({ monitors: ['127.0.0.1:7700'] });
 *   const image = await cluster.openImage('rbd/disk1');
 */
import type { NetAddress, Transport } from '../kernel/contracts/transport.js';
import { silentLogger } from '../kernel/logger.js';
import { TcpTransport } from '../plugins/transport-tcp/tcp-transport.js';
import { MonitorClient } from '../services/monitor/client.js';
import { ClusterClient, type ClientOptions } from './cluster-client.js';
import { MonitorImageWatches } from './image-watch.js';
import { MonitorMapSource } from './monitor-map-source.js';

export interface ConnectOptions extends ClientOptions {
  /** Every monitor's address, "host:port" or NetAddress. */
  readonly monitors: readonly (string | NetAddress)[];
  /** The transport to use; default: a TCP transport owned (and closed) by the client. */
  readonly transport?: Transport;
  /** Who we are in the monitors' logs. */
  readonly name?: string;
}

export async function connect(options: ConnectOptions): Promise<ClusterClient> {
  const owned = options.transport === undefined;
  const transport = options.transport ?? new TcpTransport({ source: options.name ?? 'libfastblock' }, silentLogger());
  try {
    const monitors = new MonitorClient({ transport, monitors: options.monitors, name: options.name ?? 'libfastblock' });
    const maps = await MonitorMapSource.open(monitors);
    const watches = new MonitorImageWatches(monitors, options.name ?? 'libfastblock');
    return new ClusterClient(
      transport,
      maps,
      options,
      async () => {
        if (owned) await transport.close();
      },
      watches,
    );
  } catch (err) {
    if (owned) await transport.close();
    throw err;
  }
}
