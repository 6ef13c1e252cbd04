/** The benchmark's one RPC method (bench.proto), shared by the server process and the client. */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { ServiceRange, rpcMethod } from '../../kernel/rpc/rpc-method.js';

export interface EchoRequest {
  seq: number;
  length: number;
}

export interface EchoReply {
  seq: number;
  status: number;
}

const root = protobuf.loadSync(fileURLToPath(new URL('./bench.proto', import.meta.url)));
export const Echo = rpcMethod<EchoRequest, EchoReply>(root, 'fastblock.bench.Bench', 'Echo', ServiceRange.thirdParty + 1);
