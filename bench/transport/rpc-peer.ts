/** The project side's server process: the TCP transport and the RPC dispatcher, echoing payloads. */
import { silentLogger } from '../../kernel/logger.js';
import { RpcServer } from '../../kernel/rpc/rpc-server.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { Echo } from './bench-method.js';

const checksumPayload = !process.argv.includes('no-payload-crc');
// The handler keeps nothing past its reply (which sends the request's payload back as it is), so
// it says so and the transport reuses the receive slabs; 'keep' measures the default instead.
const borrowsPayload = !process.argv.includes('keep');
const transport = new TcpTransport({ checksumPayload }, silentLogger());
const server = new RpcServer();
server.handle(Echo, (request, call) => ({ response: { seq: request.seq, status: 0 }, payload: [call.payload] }), { borrowsPayload });
const listener = await transport.listen({ host: '127.0.0.1', port: 0 }, server);
process.stdout.write(JSON.stringify({ port: listener.address.port }) + '\n');
process.on('SIGTERM', () => void transport.close().then(() => process.exit(0)));
