/**
 * The `rdma` plugin. The verbs transport (a node-addon-api addon over libibverbs) is not in this
 * tree yet; what is here is the honest part: the plugin looks for an RDMA device and refuses,
 * with one line saying why and what to use instead, rather than pretending to be a transport.
 */
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { definePlugin } from '../../kernel/plugin.js';
import { INFINIBAND_CLASS, rdmaDevices } from './rdma-devices.js';

export default definePlugin({
  name: 'rdma',
  kind: 'transport',
  version: '0.0.1',
  description: 'Transport over RDMA verbs (not implemented yet: refuses to start)',
  provides: ['Transport'],
  configSchema: {
    device: { doc: 'RDMA device name (empty: the first under /sys/class/infiniband)', format: String, default: '' },
  },
  register(_container, config) {
    const devices = rdmaDevices();
    if (devices.length === 0) {
      throw new FastblockError(ErrorCode.PLUGIN, `no RDMA device under ${INFINIBAND_CLASS}; use --plugins tcp on this host`, { devices });
    }
    if (config.device && !devices.includes(config.device)) {
      throw new FastblockError(ErrorCode.PLUGIN, `RDMA device '${config.device}' not found (have: ${devices.join(', ')}); fix rdma.device`, { devices });
    }
    throw new FastblockError(ErrorCode.PLUGIN, `found ${devices.join(', ')}, but the verbs transport is not built in this release; use --plugins tcp`, { devices });
  },
});
