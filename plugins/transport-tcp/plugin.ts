/** The `tcp` plugin: binds a TcpTransport as the daemon's Transport. */
import { TOKENS } from '../../kernel/container.js';
import { definePlugin } from '../../kernel/plugin.js';
import { TcpTransport } from './tcp-transport.js';
import { tcpConfigSchema } from './tcp-options.js';

export default definePlugin({
  name: 'tcp',
  kind: 'transport',
  version: '0.1.0',
  description: 'Transport over TCP sockets',
  provides: ['Transport'],
  configSchema: tcpConfigSchema,
  register(container, config, { logger, config: all }) {
    const daemon = (all.daemon as { name?: string } | undefined)?.name ?? 'fastblockd';
    const transport = new TcpTransport({ ...config, source: daemon }, logger);
    container.registerInstance(TOKENS.Transport, transport);
    return { stop: () => transport.close() };
  },
});
