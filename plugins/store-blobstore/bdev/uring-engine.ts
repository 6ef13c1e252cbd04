/**
 * The io_uring engine: one ring per thread (a shard is a thread), shared by its devices.
 *
 * Operations are prepared into the submission queue as they are issued and handed to the kernel
 * together — one io_uring_enter per batch — from a setImmediate, or directly by the addon after it
 * delivered completions (whatever the completion handlers issued goes out in the same enter).
 * Completions come back through an eventfd watched by libuv: no thread per I/O, no polling.
 */
import { native, type NativeRing } from '../native.js';
import { assert } from '../../../kernel/errors.js';
import { PAGE } from './aligned-memory.js';
import { type Buffers } from './bdev.js';
import { type IoEngine, ioError } from './io-engine.js';

const ENTRIES = 256;
/** In-flight operations per ring; more wait in a queue (backpressure, not failure). */
const MAX_INFLIGHT = 1024;

const Op = { read: 0, write: 1, zero: 2, fdatasync: 3, durableWrite: 4 } as const;
type Op = (typeof Op)[keyof typeof Op];
const OP_NAMES = ['read', 'write', 'zero', 'fdatasync', 'write'] as const;

/** An operation waiting for a free tag (more than MAX_INFLIGHT in flight). */
interface Waiting {
  readonly op: Op;
  readonly fd: number;
  readonly offset: number;
  readonly length: number;
  readonly buffers: Buffers | undefined;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** Where `capture`, the executor of every operation's promise, leaves its resolvers. */
const captured: { resolve: () => void; reject: (err: unknown) => void } = { resolve: () => undefined, reject: () => undefined };
const capture = (resolve: () => void, reject: (err: unknown) => void): void => {
  captured.resolve = resolve;
  captured.reject = reject;
};

export class UringEngine implements IoEngine {
  readonly backend = 'uring' as const;
  readonly direct = true;
  private readonly ring: NativeRing;
  private readonly completions = new Int32Array(512);
  // Per tag, in flat arrays: an operation costs its promise and nothing else on the heap (the
  // context of an error is built only when one happens).
  private readonly resolvers: ((() => void) | undefined)[] = new Array(MAX_INFLIGHT).fill(undefined);
  private readonly rejecters: (((err: unknown) => void) | undefined)[] = new Array(MAX_INFLIGHT).fill(undefined);
  /** Buffers the kernel (or a bounce copy-back) still uses, kept reachable until completion. */
  private readonly held: (Buffers | undefined)[] = new Array(MAX_INFLIGHT).fill(undefined);
  private readonly ops = new Uint8Array(MAX_INFLIGHT);
  private readonly fds = new Int32Array(MAX_INFLIGHT);
  private readonly offsets = new Float64Array(MAX_INFLIGHT);
  /** Bytes the operation must transfer (0 for zero and fdatasync). */
  private readonly expected = new Float64Array(MAX_INFLIGHT);
  private readonly freeTags: number[] = [];
  private readonly waiting: Waiting[] = [];
  private submitScheduled = false;
  private readonly submitNow = (): void => {
    this.submitScheduled = false;
    this.ring.submit();
  };

  private constructor() {
    assert(native !== undefined, 'uring engine needs the addon');
    for (let tag = MAX_INFLIGHT - 1; tag >= 0; tag--) this.freeTags.push(tag);
    this.ring = new native.Ring(ENTRIES, MAX_INFLIGHT, PAGE, this.completions, (count) => this.complete(count));
  }

  private static shared: UringEngine | undefined;

  /** This thread's engine. Throws with the errno when io_uring cannot be set up here. */
  static get(): UringEngine {
    UringEngine.shared ??= new UringEngine();
    return UringEngine.shared;
  }

  read(fd: number, offset: number, buffers: Buffers, length: number): Promise<void> {
    return this.issue(Op.read, fd, offset, length, buffers);
  }

  write(fd: number, offset: number, buffers: Buffers, length: number, durable = false): Promise<void> {
    return this.issue(durable ? Op.durableWrite : Op.write, fd, offset, length, buffers);
  }

  zero(fd: number, offset: number, length: number): Promise<void> {
    return this.issue(Op.zero, fd, offset, length, undefined);
  }

  fdatasync(fd: number): Promise<void> {
    return this.issue(Op.fdatasync, fd, 0, 0, undefined);
  }

  private issue(op: Op, fd: number, offset: number, length: number, buffers: Buffers | undefined): Promise<void> {
    // A shared executor hands out the resolvers: no closure per operation.
    const promise = new Promise<void>(capture);
    const { resolve, reject } = captured;
    const tag = this.freeTags.pop();
    if (tag === undefined) this.waiting.push({ op, fd, offset, length, buffers, resolve, reject });
    else this.start(tag, op, fd, offset, length, buffers, resolve, reject);
    return promise;
  }

  private start(tag: number, op: Op, fd: number, offset: number, length: number, buffers: Buffers | undefined, resolve: () => void, reject: (err: unknown) => void): void {
    try {
      switch (op) {
        case Op.read:
          this.ring.read(fd, offset, buffers!, tag);
          break;
        case Op.write:
          this.ring.write(fd, offset, buffers!, tag);
          break;
        case Op.durableWrite:
          this.ring.write(fd, offset, buffers!, tag, true);
          break;
        case Op.zero:
          this.ring.zero(fd, offset, length, tag);
          break;
        case Op.fdatasync:
          this.ring.fsync(fd, tag);
          break;
      }
    } catch (err) {
      this.release(tag);
      reject(err);
      return;
    }
    this.resolvers[tag] = resolve;
    this.rejecters[tag] = reject;
    this.held[tag] = buffers;
    this.ops[tag] = op;
    this.fds[tag] = fd;
    this.offsets[tag] = offset;
    this.expected[tag] = op === Op.read || op === Op.write || op === Op.durableWrite ? length : 0;
    if (!this.submitScheduled) {
      this.submitScheduled = true;
      setImmediate(this.submitNow);
    }
  }

  private complete(count: number): void {
    const c = this.completions;
    for (let i = 0; i < count; i++) {
      const tag = c[2 * i];
      const res = c[2 * i + 1];
      const resolve = this.resolvers[tag];
      const reject = this.rejecters[tag];
      const failure = res < 0 || res !== this.expected[tag] ? this.failure(tag, res) : undefined;
      this.release(tag);
      if (failure === undefined) resolve?.();
      else reject?.(failure);
    }
  }

  private failure(tag: number, res: number): Error {
    const op = OP_NAMES[this.ops[tag]];
    const context: Record<string, unknown> = { fd: this.fds[tag], op };
    if (op !== 'fdatasync') Object.assign(context, { offset: this.offsets[tag], length: this.ops[tag] === Op.zero ? undefined : this.expected[tag] });
    if (res < 0) return ioError(op, -res, context);
    return ioError(op, 5 /* EIO */, { ...context, transferred: res });
  }

  private release(tag: number): void {
    this.resolvers[tag] = undefined;
    this.rejecters[tag] = undefined;
    this.held[tag] = undefined;
    const next = this.waiting.shift();
    if (next !== undefined) this.start(tag, next.op, next.fd, next.offset, next.length, next.buffers, next.resolve, next.reject);
    else this.freeTags.push(tag);
  }
}
