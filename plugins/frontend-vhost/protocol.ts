/**
 * The vhost-user wire format (QEMU docs/interop/vhost-user.rst): a 12-byte header (request, flags,
 * size) and a little-endian payload, with file descriptors as SCM_RIGHTS ancillary data. Every
 * decoder here checks the exact payload size and fd count; a mismatch is a ProtocolError, which
 * closes the connection.
 */
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

export const HEADER_SIZE = 12;
/** The largest payload any message this back-end accepts carries (SET_CONFIG: 12 + 256). */
export const MAX_PAYLOAD = 4096;
export const MAX_MEM_REGIONS = 8;
export const MAX_CONFIG_SIZE = 256;

export const Request = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  /** The back-end's own channel to the front-end (called SET_SLAVE_REQ_FD before QEMU 8.1). */
  SET_BACKEND_REQ_FD: 21,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  GET_MAX_MEM_SLOTS: 36,
} as const;

/** Requests the back-end sends on its own channel. */
export const BackendRequest = {
  /** The config space changed (a resized volume): the front-end reads it again and tells the guest. */
  CONFIG_CHANGE_MSG: 2,
} as const;

const requestNames = new Map<number, string>(Object.entries(Request).map(([name, code]) => [code, name]));

export function requestName(code: number): string {
  return requestNames.get(code) ?? `request ${code}`;
}

export const HeaderFlag = {
  VERSION: 0x1,
  VERSION_MASK: 0x3,
  REPLY: 0x4,
  NEED_REPLY: 0x8,
} as const;

/** Device feature bits (virtio) this back-end deals in, as bit numbers. */
export const Feature = {
  BLK_SIZE_MAX: 1,
  BLK_SEG_MAX: 2,
  BLK_BLK_SIZE: 6,
  BLK_FLUSH: 9,
  BLK_MQ: 12,
  BLK_DISCARD: 13,
  BLK_WRITE_ZEROES: 14,
  RING_INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  /** VHOST_USER_F_PROTOCOL_FEATURES: rings start disabled; GET/SET_PROTOCOL_FEATURES exist. */
  PROTOCOL_FEATURES: 30,
  VERSION_1: 32,
} as const;

export const ProtocolFeature = {
  MQ: 0,
  REPLY_ACK: 3,
  BACKEND_REQ: 5,
  CONFIG: 9,
  INFLIGHT_SHMFD: 12,
} as const;

export function bits(...numbers: number[]): bigint {
  return numbers.reduce((mask, bit) => mask | (1n << BigInt(bit)), 0n);
}

export function hasBit(mask: bigint, bit: number): boolean {
  return (mask & (1n << BigInt(bit))) !== 0n;
}

/** Bad input from the front-end: the connection is closed with this reason logged. */
export class ProtocolError extends FastblockError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super(ErrorCode.PROTOCOL, message, context);
  }
}

export interface Message {
  readonly request: number;
  readonly flags: number;
  readonly payload: Uint8Array;
  readonly fds: readonly number[];
}

export interface Header {
  readonly request: number;
  readonly flags: number;
  readonly size: number;
}

export function decodeHeader(bytes: Uint8Array): Header {
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  const header = { request: view.getUint32(0, true), flags: view.getUint32(4, true), size: view.getUint32(8, true) };
  if ((header.flags & HeaderFlag.VERSION_MASK) !== HeaderFlag.VERSION) {
    throw new ProtocolError('unsupported vhost-user version', { request: header.request, flags: header.flags });
  }
  if (header.size > MAX_PAYLOAD) throw new ProtocolError('message payload too large', { request: requestName(header.request), size: header.size });
  return header;
}

export function encodeMessage(request: number, payload: Uint8Array, flags = HeaderFlag.VERSION | HeaderFlag.REPLY): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, request, true);
  view.setUint32(4, flags, true);
  view.setUint32(8, payload.length, true);
  out.set(payload, HEADER_SIZE);
  return out;
}

function payloadView(message: Message, size: number): DataView {
  if (message.payload.length !== size) {
    throw new ProtocolError(`${requestName(message.request)} needs a ${size}-byte payload`, { size: message.payload.length });
  }
  return new DataView(message.payload.buffer, message.payload.byteOffset, size);
}

export function expectFds(message: Message, count: number): void {
  if (message.fds.length !== count) {
    throw new ProtocolError(`${requestName(message.request)} needs ${count} file descriptor(s)`, { got: message.fds.length });
  }
}

export function expectEmpty(message: Message): void {
  payloadView(message, 0);
  expectFds(message, 0);
}

export function decodeU64(message: Message): bigint {
  const view = payloadView(message, 8);
  expectFds(message, 0);
  return view.getBigUint64(0, true);
}

export function encodeU64(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value, true);
  return out;
}

export interface VringState {
  readonly index: number;
  readonly num: number;
}

export function decodeVringState(message: Message): VringState {
  const view = payloadView(message, 8);
  expectFds(message, 0);
  return { index: view.getUint32(0, true), num: view.getUint32(4, true) };
}

export function encodeVringState(state: VringState): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, state.index, true);
  view.setUint32(4, state.num, true);
  return out;
}

export interface VringAddress {
  readonly index: number;
  readonly flags: number;
  /** Front-end (QEMU process) virtual addresses of the three parts of a split ring. */
  readonly desc: bigint;
  readonly used: bigint;
  readonly avail: bigint;
  readonly log: bigint;
}

export function decodeVringAddress(message: Message): VringAddress {
  const view = payloadView(message, 40);
  expectFds(message, 0);
  return {
    index: view.getUint32(0, true),
    flags: view.getUint32(4, true),
    desc: view.getBigUint64(8, true),
    used: view.getBigUint64(16, true),
    avail: view.getBigUint64(24, true),
    log: view.getBigUint64(32, true),
  };
}

/** SET_VRING_KICK/CALL/ERR: the ring index, and an fd unless bit 8 says the ring is polled instead. */
export interface VringFile {
  readonly index: number;
  readonly fd: number | undefined;
}

export function decodeVringFile(message: Message): VringFile {
  const view = payloadView(message, 8);
  const value = view.getBigUint64(0, true);
  const noFd = (value & 0x100n) !== 0n;
  expectFds(message, noFd ? 0 : 1);
  return { index: Number(value & 0xffn), fd: noFd ? undefined : message.fds[0] };
}

export interface MemoryRegionSpec {
  readonly guestAddress: number;
  readonly size: number;
  readonly userAddress: bigint;
  readonly mmapOffset: number;
  readonly fd: number;
}

function safeNumber(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`${what} out of range`, { value: value.toString() });
  return Number(value);
}

export function decodeMemTable(message: Message): MemoryRegionSpec[] {
  if (message.payload.length < 8) throw new ProtocolError('SET_MEM_TABLE payload too short', { size: message.payload.length });
  const count = new DataView(message.payload.buffer, message.payload.byteOffset, 8).getUint32(0, true);
  if (count === 0 || count > MAX_MEM_REGIONS) throw new ProtocolError('SET_MEM_TABLE region count out of range', { count });
  const view = payloadView(message, 8 + 32 * count);
  expectFds(message, count);
  const regions: MemoryRegionSpec[] = [];
  for (let i = 0; i < count; i++) {
    const at = 8 + 32 * i;
    const region = {
      guestAddress: safeNumber(view.getBigUint64(at, true), 'guest address'),
      size: safeNumber(view.getBigUint64(at + 8, true), 'region size'),
      userAddress: view.getBigUint64(at + 16, true),
      mmapOffset: safeNumber(view.getBigUint64(at + 24, true), 'mmap offset'),
      fd: message.fds[i]!,
    };
    if (region.size === 0) throw new ProtocolError('empty memory region', { index: i });
    regions.push(region);
  }
  return regions;
}

export interface ConfigAccess {
  readonly offset: number;
  readonly size: number;
  readonly flags: number;
  readonly data: Uint8Array;
}

export function decodeConfig(message: Message): ConfigAccess {
  if (message.payload.length < 12) throw new ProtocolError(`${requestName(message.request)} payload too short`, { size: message.payload.length });
  const head = new DataView(message.payload.buffer, message.payload.byteOffset, 12);
  const size = head.getUint32(4, true);
  if (size > MAX_CONFIG_SIZE) throw new ProtocolError('config access too large', { size });
  payloadView(message, 12 + size);
  expectFds(message, 0);
  return { offset: head.getUint32(0, true), size, flags: head.getUint32(8, true), data: message.payload.subarray(12, 12 + size) };
}

export function encodeConfig(access: ConfigAccess): Uint8Array {
  const out = new Uint8Array(12 + access.data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, access.offset, true);
  view.setUint32(4, access.data.length, true);
  view.setUint32(8, access.flags, true);
  out.set(access.data, 12);
  return out;
}

/** GET/SET_INFLIGHT_FD (C struct: u64 mmap_size, u64 mmap_offset, u16 num_queues, u16 queue_size, padded to 24). */
export interface InflightSpec {
  readonly mmapSize: number;
  readonly mmapOffset: number;
  readonly numQueues: number;
  readonly queueSize: number;
}

export const INFLIGHT_PAYLOAD = 24;

export function decodeInflight(message: Message, fds: number): InflightSpec {
  const view = payloadView(message, INFLIGHT_PAYLOAD);
  expectFds(message, fds);
  return {
    mmapSize: safeNumber(view.getBigUint64(0, true), 'inflight size'),
    mmapOffset: safeNumber(view.getBigUint64(8, true), 'inflight offset'),
    numQueues: view.getUint16(16, true),
    queueSize: view.getUint16(18, true),
  };
}

export function encodeInflight(spec: InflightSpec): Uint8Array {
  const out = new Uint8Array(INFLIGHT_PAYLOAD);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(spec.mmapSize), true);
  view.setBigUint64(8, BigInt(spec.mmapOffset), true);
  view.setUint16(16, spec.numQueues, true);
  view.setUint16(18, spec.queueSize, true);
  return out;
}
