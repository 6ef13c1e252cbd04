/**
 * The control service (control.proto): Status, and Admin, which runs a named command from the
 * daemon's AdminCommands. Server side: serveControl(); client side: fetchStatus(), runAdmin().
 */
import type { RequestOptions, TransportConnection } from '../contracts/transport.js';
import { ErrorCode, FastblockError } from '../errors.js';
import type { AdminArgs, AdminCommands } from './admin-commands.js';
import { loadProto } from './proto.js';
import { call } from './rpc-client.js';
import { ServiceRange, rpcMethod } from './rpc-method.js';
import type { RpcServer } from './rpc-server.js';

export interface PluginStatus {
  name: string;
  kind: string;
  version: string;
  origin: string;
  description: string;
}

export interface StatusReply {
  daemon: string;
  version: string;
  pid: number;
  uptimeMs: number;
  listen: string;
  plugins: PluginStatus[];
  commands: { name: string; summary: string }[];
  methods: string[];
  nodeVersion: string;
  /** The /metrics URL, or '' when metrics are not served. */
  metrics: string;
}

interface AdminRequest {
  command: string;
}

type AdminReply = Record<string, never>;

const utf8 = new TextDecoder();
const encodeJson = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value ?? null));

const root = loadProto('control.proto');
export const ControlMethods = {
  Status: rpcMethod<Record<string, never>, StatusReply>(root, 'fastblock.control.Control', 'Status', ServiceRange.control + 1),
  Admin: rpcMethod<AdminRequest, AdminReply>(root, 'fastblock.control.Control', 'Admin', ServiceRange.control + 2),
} as const;

export function serveControl(server: RpcServer, status: () => StatusReply, admin: AdminCommands): () => void {
  const removeStatus = server.handle(ControlMethods.Status, () => ({ response: status() }));
  const removeAdmin = server.handle(ControlMethods.Admin, async (request, { payload }) => {
    let args: unknown = {};
    if (payload.length > 0) {
      try {
        args = JSON.parse(utf8.decode(payload));
      } catch {
        throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `arguments of '${request.command}' are not valid JSON`, { command: request.command });
      }
    }
    if (typeof args !== 'object' || args === null || Array.isArray(args)) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `arguments of '${request.command}' must be a JSON object`, { command: request.command });
    }
    const result = await admin.run(request.command, args as AdminArgs);
    return { response: {}, payload: [encodeJson(result)] };
  });
  return () => {
    removeStatus();
    removeAdmin();
  };
}

export async function fetchStatus(connection: TransportConnection, options?: RequestOptions): Promise<StatusReply> {
  return (await call(connection, ControlMethods.Status, {}, undefined, options)).response;
}

/** Runs `command` on the daemon; its FastblockError, if any, is rethrown here whole. */
export async function runAdmin(connection: TransportConnection, command: string, args: AdminArgs = {}, options?: RequestOptions): Promise<unknown> {
  const { payload } = await call(connection, ControlMethods.Admin, { command }, [encodeJson(args)], options);
  return JSON.parse(utf8.decode(payload)) as unknown;
}
