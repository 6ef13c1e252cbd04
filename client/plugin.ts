/**
 * The `client` plugin: libfastblock inside a daemon, registered as the BlockVolumeProvider that
 * frontends serve images from. A gateway:
 *
 *   fastblockd --plugins tcp,client,nbd --set client.monitors=127.0.0.1:7700
 *
 * register() binds a provider at once (frontends resolve it in their own register()); the
 * cluster connection is made in start(), and open() waits for it.
 */
import type { Schema } from 'convict';
import type { BlockVolume, BlockVolumeProvider } from '../kernel/contracts/block.js';
import type { Transport } from '../kernel/contracts/transport.js';
import { TOKENS } from '../kernel/container.js';
import { ErrorCode, FastblockError } from '../kernel/errors.js';
import { definePlugin } from '../kernel/plugin.js';
import type { ClusterClient } from './cluster-client.js';
import { connect } from './connect.js';

interface ClientConfig {
  readonly monitors: string;
  readonly maxInFlight: number;
  readonly opTimeoutMs: number;
}

const schema: Schema<ClientConfig> = {
  monitors: { doc: 'Monitor addresses, comma-separated HOST:PORT', format: String, default: '127.0.0.1:7700' },
  maxInFlight: { doc: 'Object I/Os in flight per open image', format: 'nat', default: 128 },
  opTimeoutMs: { doc: 'Longest one I/O may take, retries included (ms)', format: 'nat', default: 60_000 },
};

class DeferredProvider implements BlockVolumeProvider {
  client: ClusterClient | undefined;
  async open(name: string): Promise<BlockVolume> {
    return this.connected().open(name);
  }
  async list(): Promise<string[]> {
    return this.connected().list();
  }
  private connected(): ClusterClient {
    if (!this.client) throw new FastblockError(ErrorCode.CLOSED, 'the client plugin is not connected to the cluster', {});
    return this.client;
  }
}

export default definePlugin<ClientConfig>({
  name: 'client',
  kind: 'service',
  version: '0.1.0',
  description: 'libfastblock: serves cluster images to frontends (the BlockVolumeProvider)',
  provides: ['BlockVolumeProvider'],
  requires: ['Transport'],
  configSchema: schema,
  register(container, config, { logger }) {
    const provider = new DeferredProvider();
    container.registerInstance(TOKENS.BlockVolumeProvider, provider);
    return {
      start: async () => {
        const transport = container.resolve<Transport>(TOKENS.Transport);
        provider.client = await connect({
          monitors: config.monitors.split(',').map((s) => s.trim()).filter(Boolean),
          transport,
          name: 'gateway',
          maxInFlight: config.maxInFlight,
          retry: { opTimeoutMs: config.opTimeoutMs },
        });
        logger.info({ epoch: provider.client.maps.current().epoch }, 'client connected to the cluster');
      },
      stop: async () => {
        await provider.client?.close();
      },
    };
  },
});
