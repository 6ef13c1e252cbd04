/**
 * An RPC method: a number on the wire, a name for logs, a request and a response header type.
 * Payload bytes are not part of either type; they travel as the frame's raw tail.
 *
 * Method ids are fixed numbers, one range of 256 per service, so that ids never shift when a
 * .proto file changes: 0x01xx control, 0x02xx data, 0x03xx raft, 0x04xx monitor, and from
 * 0x1000 for third-party plugins (256 ids each, by convention 0x1000 + 0x100 * n).
 */
import type protobuf from 'protobufjs';
import { assert } from '../errors.js';
import { messageCodec, type MessageCodec } from './proto.js';

export const ServiceRange = {
  control: 0x0100,
  data: 0x0200,
  raft: 0x0300,
  monitor: 0x0400,
  thirdParty: 0x1000,
} as const;

export interface RpcMethod<Req, Res> {
  readonly id: number;
  /** "fastblock.control.Control/Status" */
  readonly name: string;
  readonly request: MessageCodec<Req>;
  readonly response: MessageCodec<Res>;
}

/** A one-way message type: no response. */
export interface RpcMessage<Msg> {
  readonly id: number;
  readonly name: string;
  readonly message: MessageCodec<Msg>;
}

/** The method `methodName` of `service` in `root`, on the wire as `id`. Asserts the names exist. */
export function rpcMethod<Req, Res>(root: protobuf.Root, service: string, methodName: string, id: number): RpcMethod<Req, Res> {
  assert(Number.isInteger(id) && id > 0 && id <= 0xffffffff, `method id ${id} out of range`);
  const method = root.lookupService(service).methods[methodName];
  assert(method, `${service} has no method ${methodName}`);
  method.resolve();
  return {
    id,
    name: `${service}/${methodName}`,
    request: messageCodec<Req>(root, method.resolvedRequestType!.fullName.replace(/^\./, '')),
    response: messageCodec<Res>(root, method.resolvedResponseType!.fullName.replace(/^\./, '')),
  };
}

export function rpcMessage<Msg>(root: protobuf.Root, typeName: string, id: number): RpcMessage<Msg> {
  assert(Number.isInteger(id) && id > 0 && id <= 0xffffffff, `message id ${id} out of range`);
  return { id, name: typeName, message: messageCodec<Msg>(root, typeName) };
}
