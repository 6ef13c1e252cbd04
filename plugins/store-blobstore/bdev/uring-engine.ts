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

type Settle = (res: number) => void;

export class UringEngine implements IoEngine {
  readonly backend = 'uring' as const;
  readonly direct = true;
  private readonly ring: NativeRing;
  private readonly completions = new Int32Array(512);
  private readonly settle: (Settle | undefined)[] = new Array(MAX_INFLIGHT).fill(undefined);
  /** Buffers the kernel (or a bounce copy-back) still uses, kept reachable until completion. */
  private readonly held: (Buffers | undefined)[] = new Array(MAX_INFLIGHT).fill(undefined);
  private readonly freeTags: number[] = [];
  private readonly waiting: ((tag: number) => void)[] = [];
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
    return this.issue(length, buffers, (tag) => this.ring.read(fd, offset, buffers, tag), { fd, offset, length, op: 'read' });
  }

  write(fd: number, offset: number, buffers: Buffers, length: number): Promise<void> {
    return this.issue(length, buffers, (tag) => this.ring.write(fd, offset, buffers, tag), { fd, offset, length, op: 'write' });
  }

  zero(fd: number, offset: number, length: number): Promise<void> {
    return this.issue(0, undefined, (tag) => this.ring.zero(fd, offset, length, tag), { fd, offset, length, op: 'zero' });
  }

  fdatasync(fd: number): Promise<void> {
    return this.issue(0, undefined, (tag) => this.ring.fsync(fd, tag), { fd, op: 'fdatasync' });
  }

  private issue(expected: number, buffers: Buffers | undefined, prepare: (tag: number) => void, context: Record<string, unknown>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const start = (tag: number): void => {
        this.settle[tag] = (res) => {
          if (res < 0) reject(ioError(String(context.op), -res, context));
          else if (res !== expected) reject(ioError(String(context.op), 5 /* EIO */, { ...context, transferred: res }));
          else resolve();
        };
        this.held[tag] = buffers;
        try {
          prepare(tag);
        } catch (err) {
          this.release(tag);
          reject(err);
          return;
        }
        if (!this.submitScheduled) {
          this.submitScheduled = true;
          setImmediate(this.submitNow);
        }
      };
      const tag = this.freeTags.pop();
      if (tag === undefined) this.waiting.push(start);
      else start(tag);
    });
  }

  private complete(count: number): void {
    const c = this.completions;
    for (let i = 0; i < count; i++) {
      const tag = c[2 * i];
      const settle = this.settle[tag];
      this.release(tag);
      settle?.(c[2 * i + 1]);
    }
  }

  private release(tag: number): void {
    this.settle[tag] = undefined;
    this.held[tag] = undefined;
    const next = this.waiting.shift();
    if (next !== undefined) next(tag);
    else this.freeTags.push(tag);
  }
}
