/**
 * .proto files under kernel/rpc, loaded by reflection (protobufjs builds each type's encoder
 * and decoder as generated JavaScript at load time, so it runs as fast as static code without a
 * generation step; see docs/architecture.md, "RPC").
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { ErrorCode, FastblockError } from '../errors.js';

const roots = new Map<string, protobuf.Root>();

/** Path of kernel/rpc/<file>, from sources (kernel/rpc/) or from the build (dist/kernel/rpc/). */
export function protoPath(file: string): string {
  for (const relative of [`./${file}`, `../../../kernel/rpc/${file}`]) {
    const path = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new FastblockError(ErrorCode.INTERNAL, `kernel/rpc/${file} not found beside ${import.meta.url}`, { file });
}

/** The parsed root of one .proto file; parsed once per process (and once per worker thread). */
export function loadProto(file: string): protobuf.Root {
  let root = roots.get(file);
  if (!root) {
    root = protobuf.loadSync(protoPath(file));
    root.resolveAll();
    roots.set(file, root);
  }
  return root;
}

export interface MessageCodec<T> {
  readonly typeName: string;
  encode(value: T): Uint8Array;
  /** Throws FastblockError PROTOCOL on bytes that are not a valid T. */
  decode(bytes: Uint8Array): T;
}

/**
 * A codec for one message type. Decoded values are plain objects with every field present
 * (proto3 defaults), 64-bit integers as numbers, enums as numbers, bytes as Uint8Array.
 */
export function messageCodec<T>(root: protobuf.Root, typeName: string): MessageCodec<T> {
  const type = root.lookupType(typeName);
  const options: protobuf.IConversionOptions = { longs: Number, enums: Number, defaults: true, arrays: true };
  return {
    typeName,
    // Values are typed T already, so encode straight from them (no fromObject pass).
    encode: (value) => type.encode(value as Record<string, unknown>).finish(),
    decode: (bytes) => {
      try {
        return type.toObject(type.decode(bytes), options) as T;
      } catch (err) {
        throw new FastblockError(ErrorCode.PROTOCOL, `malformed ${typeName}: ${(err as Error).message}`, { typeName, bytes: bytes.length });
      }
    },
  };
}
