/**
 * One vhost-user session with a front-end (QEMU) on an accepted unix socket: reads messages with
 * their file descriptors, answers them one at a time in order, and runs the device's virtqueues.
 *
 * Anything the front-end gets wrong (a wrong payload size, a missing fd, an index out of range, a
 * ring the guest broke) closes this connection with the reason logged; the controller then waits
 * for the front-end to reconnect. Messages this back-end does not implement are refused (a failure
 * reply when one is expected) and logged, and the session goes on.
 */
import type { Logger } from 'pino';
import type { BlockVolume } from '../../kernel/contracts/block.js';
import { GuestMemory } from './guest-memory.js';
import { InflightQueue, inflightQueueBytes } from './inflight.js';
import type { VhostNative, Watcher } from './native.js';
import { blkConfigSpace, BLK_DEVICE_FEATURES } from './blk-config.js';
import { isValidQueueSize } from './split-ring.js';
import { Virtqueue, type QueueContext } from './virtqueue.js';
import {
  BackendRequest,
  Feature,
  HEADER_SIZE,
  HeaderFlag,
  ProtocolError,
  ProtocolFeature,
  Request,
  bits,
  decodeConfig,
  decodeHeader,
  decodeInflight,
  decodeMemTable,
  decodeU64,
  decodeVringAddress,
  decodeVringFile,
  decodeVringState,
  encodeConfig,
  encodeInflight,
  encodeMessage,
  encodeU64,
  encodeVringState,
  expectEmpty,
  expectFds,
  hasBit,
  requestName,
  type Header,
  type Message,
} from './protocol.js';

/** Messages read ahead of the one being handled before reading pauses. */
const MAX_QUEUED_MESSAGES = 64;
const PROTOCOL_FEATURES = bits(ProtocolFeature.MQ, ProtocolFeature.REPLY_ACK, ProtocolFeature.BACKEND_REQ, ProtocolFeature.CONFIG, ProtocolFeature.INFLIGHT_SHMFD);
const OFFERED_FEATURES = BLK_DEVICE_FEATURES | bits(Feature.PROTOCOL_FEATURES);

export interface DeviceSpec {
  readonly volume: BlockVolume;
  readonly queues: number;
  /** virtio-blk GET_ID (at most 20 bytes). */
  readonly serial: string;
}

interface Reply {
  readonly payload: Uint8Array;
  /** Sent with the reply, then closed: the front-end has its own copies. */
  readonly fds?: readonly number[];
}

/** A request this back-end declines; the session goes on. */
class RefusedError extends Error {}

/** What a handler returns: a reply, or nothing (REPLY_ACK then acknowledges success). */
type Outcome = Reply | undefined;

export class Connection {
  private readonly queues: Virtqueue[];
  private memory: GuestMemory | undefined;
  /** Mappings replaced by a later SET_MEM_TABLE, released once no request uses them. */
  private readonly retired: GuestMemory[] = [];
  private inflightMapping: ArrayBuffer | undefined;
  private features = 0n;
  private protocolFeatures = 0n;
  /** The front-end's end of the back-end channel (SET_BACKEND_REQ_FD), for config change notices. */
  private backendFd: number | undefined;
  /** Readability of the socket; paused while too many messages wait for their turn. */
  private watcher: Watcher | undefined;
  private readonly inbox: Message[] = [];
  /** File descriptors of the message being handled that no handler took over yet. */
  private unclaimed = new Set<number>();
  private pumping = false;
  private closed = false;
  private readonly header = new Uint8Array(HEADER_SIZE);
  private partial: { header?: Header; payload?: Uint8Array; got: number; fds: number[] } = { got: 0, fds: [] };
  readonly done: Promise<void>;
  private finish!: () => void;

  constructor(
    private readonly fd: number,
    private readonly device: DeviceSpec,
    private readonly native: VhostNative,
    private readonly log: Logger,
  ) {
    const ctx: QueueContext = {
      native,
      volume: device.volume,
      serial: device.serial,
      log,
      eventIdx: () => hasBit(this.features, Feature.RING_EVENT_IDX),
      memory: () => this.memory,
      broken: (err) => this.close(`the guest broke a ring: ${err.message}`, err),
      idle: () => {
        if (this.retired.length) this.releaseRetired();
      },
    };
    this.queues = Array.from({ length: device.queues }, (_, i) => new Virtqueue(i, ctx));
    this.done = new Promise((resolve) => (this.finish = resolve));
    this.watcher = new native.Watcher(fd, () => this.readable());
  }

  private resumeReading(): void {
    if (!this.watcher && !this.closed) this.watcher = new this.native.Watcher(this.fd, () => this.readable());
  }

  /** Closed, with requests possibly still finishing; `done` resolves when they have. */
  get closing(): boolean {
    return this.closed;
  }

  private readable(): void {
    try {
      for (;;) {
        const p = this.partial;
        const target = p.header ? p.payload!.subarray(p.got) : this.header.subarray(p.got);
        if (target.length > 0) {
          const [n, ...fds] = this.native.recv(this.fd, target);
          p.fds.push(...fds);
          if (n === -1) return;
          if (n === 0) return this.close('front-end closed the connection');
          p.got += n!;
          if (p.got < (p.header ? p.payload!.length : HEADER_SIZE)) continue;
        }
        if (!p.header) {
          p.header = decodeHeader(this.header);
          p.payload = new Uint8Array(p.header.size);
          p.got = 0;
          if (p.header.size > 0) continue;
        }
        this.inbox.push({ request: p.header.request, flags: p.header.flags, payload: p.payload!, fds: p.fds });
        this.partial = { got: 0, fds: [] };
        void this.pump();
        if (this.inbox.length >= MAX_QUEUED_MESSAGES) {
          // A front-end that does not wait for replies is read no faster than it is answered.
          this.watcher?.stop();
          this.watcher = undefined;
          return;
        }
      }
    } catch (err) {
      this.close(err instanceof ProtocolError ? err.message : `receive failed: ${(err as Error).message}`, err);
    }
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      let message: Message | undefined;
      while (!this.closed && (message = this.inbox.shift())) await this.dispatch(message);
    } finally {
      this.pumping = false;
    }
    this.resumeReading();
  }

  private async dispatch(message: Message): Promise<void> {
    const name = requestName(message.request);
    this.log.debug({ request: name, size: message.payload.length, fds: message.fds.length }, 'vhost-user request');
    let outcome: Outcome;
    let ok = true;
    this.unclaimed = new Set(message.fds);
    try {
      outcome = await this.handle(message);
    } catch (err) {
      if (err instanceof ProtocolError) return this.close(`${name}: ${err.message}`, err);
      if (!(err instanceof RefusedError)) return this.close(`${name} failed: ${(err as Error).message}`, err);
      this.log.warn({ request: name, reason: err.message }, 'vhost-user request refused');
      ok = false;
    } finally {
      // Whatever fd the handler did not take over (an error, a refusal, an extra one) is closed here, once.
      for (const fd of this.unclaimed) this.native.close(fd);
      this.unclaimed.clear();
    }
    try {
      if (outcome) this.send(message.request, outcome);
      else if (hasBit(this.protocolFeatures, ProtocolFeature.REPLY_ACK) && message.flags & HeaderFlag.NEED_REPLY) {
        this.send(message.request, { payload: encodeU64(ok ? 0n : 1n) });
      }
    } catch (err) {
      this.close(`cannot reply to ${name}: ${(err as Error).message}`, err);
    }
  }

  private send(request: number, reply: Reply): void {
    const bytes = encodeMessage(request, reply.payload);
    let sent: number;
    try {
      sent = this.native.send(this.fd, bytes, reply.fds);
    } finally {
      for (const fd of reply.fds ?? []) this.native.close(fd);
    }
    if (sent !== bytes.length) throw new ProtocolError('short send of a reply', { sent, length: bytes.length });
  }

  /** The handler keeps fd: it is no longer closed when the message is done. */
  private claim(fd: number): number {
    this.unclaimed.delete(fd);
    return fd;
  }

  private queue(index: number, request: number): Virtqueue {
    const queue = this.queues[index];
    if (!queue) throw new ProtocolError(`${requestName(request)} names queue ${index}; the device has ${this.queues.length}`);
    return queue;
  }

  private async handle(m: Message): Promise<Outcome> {
    switch (m.request) {
      case Request.GET_FEATURES:
        expectEmpty(m);
        return { payload: encodeU64(OFFERED_FEATURES) };
      case Request.SET_FEATURES: {
        const features = decodeU64(m);
        if (features & ~OFFERED_FEATURES) throw new ProtocolError('SET_FEATURES acks features never offered', { extra: (features & ~OFFERED_FEATURES).toString(16) });
        this.features = features;
        // Without protocol features rings start enabled (vhost-user "Ring states").
        if (!hasBit(features, Feature.PROTOCOL_FEATURES)) for (const q of this.queues) q.setEnabled(true);
        return undefined;
      }
      case Request.GET_PROTOCOL_FEATURES:
        expectEmpty(m);
        return { payload: encodeU64(PROTOCOL_FEATURES) };
      case Request.SET_PROTOCOL_FEATURES: {
        const features = decodeU64(m);
        if (features & ~PROTOCOL_FEATURES) throw new ProtocolError('SET_PROTOCOL_FEATURES acks features never offered', { extra: (features & ~PROTOCOL_FEATURES).toString(16) });
        this.protocolFeatures = features;
        return undefined;
      }
      case Request.SET_OWNER:
        expectEmpty(m);
        return undefined;
      case Request.RESET_OWNER:
        expectEmpty(m);
        for (const q of this.queues) await q.stop();
        this.features = 0n;
        return undefined;
      case Request.GET_QUEUE_NUM:
        expectEmpty(m);
        return { payload: encodeU64(BigInt(this.queues.length)) };
      case Request.SET_MEM_TABLE: {
        const regions = decodeMemTable(m);
        for (const region of regions) this.claim(region.fd); // GuestMemory.map closes them
        if (this.memory) this.retired.push(this.memory);
        this.memory = GuestMemory.map(this.native, regions);
        for (const q of this.queues) q.remap();
        this.releaseRetired();
        return undefined;
      }
      case Request.SET_VRING_NUM: {
        const state = decodeVringState(m);
        const q = this.queue(state.index, m.request);
        if (!isValidQueueSize(state.num)) throw new ProtocolError('queue size must be a power of two up to 32768', { size: state.num });
        q.size = state.num;
        return undefined;
      }
      case Request.SET_VRING_ADDR: {
        const address = decodeVringAddress(m);
        this.queue(address.index, m.request).address = address;
        return undefined;
      }
      case Request.SET_VRING_BASE: {
        const state = decodeVringState(m);
        if (state.num > 0xffff) throw new ProtocolError('vring base out of range', { base: state.num });
        this.queue(state.index, m.request).base = state.num;
        return undefined;
      }
      case Request.GET_VRING_BASE: {
        const state = decodeVringState(m);
        const q = this.queue(state.index, m.request);
        const base = await q.stop();
        q.closeFds();
        return { payload: encodeVringState({ index: state.index, num: base }) };
      }
      case Request.SET_VRING_KICK: {
        const file = decodeVringFile(m);
        const q = this.queue(file.index, m.request);
        if (file.fd === undefined) throw new RefusedError('polled rings (no kick fd) are not supported');
        q.setKick(this.claim(file.fd));
        return undefined;
      }
      case Request.SET_VRING_CALL: {
        const file = decodeVringFile(m);
        const q = this.queue(file.index, m.request);
        if (q.callFd !== undefined) this.native.close(q.callFd);
        q.callFd = file.fd === undefined ? undefined : this.claim(file.fd);
        return undefined;
      }
      case Request.SET_VRING_ERR: {
        const file = decodeVringFile(m);
        const q = this.queue(file.index, m.request);
        if (q.errFd !== undefined) this.native.close(q.errFd);
        q.errFd = file.fd === undefined ? undefined : this.claim(file.fd);
        return undefined;
      }
      case Request.SET_VRING_ENABLE: {
        const state = decodeVringState(m);
        const q = this.queue(state.index, m.request);
        if (state.num > 1) throw new ProtocolError('SET_VRING_ENABLE takes 0 or 1', { value: state.num });
        q.setEnabled(state.num === 1);
        return undefined;
      }
      case Request.GET_CONFIG: {
        const access = decodeConfig(m);
        const space = blkConfigSpace(this.device.volume.size, this.device.volume.blockSize, this.queues.length);
        const data = new Uint8Array(access.size);
        if (access.offset < space.length) data.set(space.subarray(access.offset, access.offset + access.size));
        return { payload: encodeConfig({ ...access, data }) };
      }
      case Request.SET_BACKEND_REQ_FD: {
        expectFds(m, 1);
        if (m.payload.length !== 0) throw new ProtocolError('SET_BACKEND_REQ_FD carries no payload', { size: m.payload.length });
        if (this.backendFd !== undefined) this.native.close(this.backendFd);
        this.backendFd = this.claim(m.fds[0]!);
        return undefined;
      }
      case Request.SET_CONFIG:
        decodeConfig(m);
        throw new RefusedError('the config space is read-only (no writeback toggle offered)');
      case Request.GET_INFLIGHT_FD: {
        const spec = decodeInflight(m, 0);
        this.checkInflightShape(spec.numQueues, spec.queueSize);
        const size = spec.numQueues * inflightQueueBytes(spec.queueSize);
        const fd = this.native.memfd('fastblock-vhost-inflight', size);
        try {
          this.attachInflight(this.native.mmap(fd, size, 0), spec.numQueues, spec.queueSize);
        } catch (err) {
          this.native.close(fd);
          throw err;
        }
        return { payload: encodeInflight({ mmapSize: size, mmapOffset: 0, numQueues: spec.numQueues, queueSize: spec.queueSize }), fds: [fd] };
      }
      case Request.SET_INFLIGHT_FD: {
        const spec = decodeInflight(m, 1);
        this.checkInflightShape(spec.numQueues, spec.queueSize);
        if (spec.mmapSize < spec.numQueues * inflightQueueBytes(spec.queueSize)) throw new ProtocolError('inflight region smaller than its queues need', { ...spec });
        // The mapping outlives the fd, which is closed with the message.
        this.attachInflight(this.native.mmap(m.fds[0]!, spec.mmapSize, spec.mmapOffset), spec.numQueues, spec.queueSize);
        return undefined;
      }
      default:
        throw new RefusedError(`unsupported vhost-user request ${requestName(m.request)}`);
    }
  }

  private checkInflightShape(numQueues: number, queueSize: number): void {
    if (numQueues < 1 || numQueues > this.queues.length || !isValidQueueSize(queueSize)) {
      throw new ProtocolError('inflight region shape out of range', { numQueues, queueSize, deviceQueues: this.queues.length });
    }
  }

  private attachInflight(mapping: ArrayBuffer, numQueues: number, queueSize: number): void {
    if (this.queues.some((q) => q.running)) {
      this.native.unmap(mapping);
      throw new RefusedError('an inflight region cannot replace the one of running rings');
    }
    if (this.inflightMapping) this.native.unmap(this.inflightMapping);
    this.inflightMapping = mapping;
    const per = inflightQueueBytes(queueSize);
    this.queues.forEach((q, i) => {
      q.inflight = i < numQueues ? new InflightQueue(new Uint8Array(mapping, i * per, per), queueSize) : undefined;
    });
  }

  /**
   * The config space changed (the volume was resized): the front-end reads it again and raises a
   * config interrupt in the guest, whose driver then takes the new capacity. Without a back-end
   * channel the guest learns the size when it next connects.
   */
  configChanged(): boolean {
    if (this.closed || this.backendFd === undefined) return false;
    const bytes = encodeMessage(BackendRequest.CONFIG_CHANGE_MSG, new Uint8Array(0), HeaderFlag.VERSION);
    try {
      if (this.native.send(this.backendFd, bytes) === bytes.length) return true;
      this.log.warn('short send of a config change notice');
    } catch (err) {
      this.log.warn({ err }, 'config change notice not sent');
    }
    return false;
  }

  private releaseRetired(): void {
    if (this.queues.some((q) => q.requestsInFlight > 0)) return;
    for (const memory of this.retired.splice(0)) memory.unmap();
  }

  /** Ends the session: requests in flight finish against the volume but never touch the rings. */
  close(reason: string, err?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    const level = err ? 'warn' : 'info';
    this.log[level]({ reason, ...(err instanceof ProtocolError ? { context: err.context } : {}) }, 'vhost-user connection closed');
    this.watcher?.stop();
    this.watcher = undefined;
    this.native.close(this.fd);
    if (this.backendFd !== undefined) this.native.close(this.backendFd);
    for (const fd of this.partial.fds) this.native.close(fd);
    for (const m of this.inbox.splice(0)) for (const fd of m.fds) this.native.close(fd);
    void Promise.all(this.queues.map((q) => q.abandon())).then(() => {
      this.memory?.unmap();
      for (const memory of this.retired.splice(0)) memory.unmap();
      if (this.inflightMapping) this.native.unmap(this.inflightMapping);
      this.finish();
    });
  }
}
