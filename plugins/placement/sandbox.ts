/**
 * Runs one call of a policy off the main thread. Each call gets a fresh worker and a fresh instance:
 * no state survives between calls, a policy that loops is terminated when its time is up, and one
 * that grows memory past the cap traps inside the engine (wasm-module.ts set the maximum).
 */
import { Worker } from 'node:worker_threads';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { ABI_VERSION, ENTRY_POINT, OUTPUT_HEADER_WORDS, POLICY_KIND, type PolicyKind } from './abi.js';
import { WASM_PAGE_BYTES } from './wasm-module.js';

export interface SandboxLimits {
  /**
   * Wall-clock budget of the policy's own run. Worker start and module compile are timed apart
   * (STARTUP_TIMEOUT_MS): on a loaded host they alone can take seconds, and charging them to the
   * policy would refuse a good policy, or report a memory bomb as a loop.
   */
  readonly timeoutMs: number;
  /** Cap on the policy's linear memory, in 64 KiB pages. */
  readonly memoryPages: number;
}

export const DEFAULT_LIMITS: SandboxLimits = { timeoutMs: 10_000, memoryPages: 4096 };

/** Bound on starting the worker and instantiating the module, before the policy runs. */
const STARTUP_TIMEOUT_MS = 60_000;

interface WorkerJob {
  readonly bytes: Uint8Array;
  readonly kind: number;
  readonly entry: string;
  readonly input: Int32Array;
  readonly loaderUrl: string;
  readonly abiVersion: number;
  readonly headerWords: number;
}

type WorkerReply =
  | { ready: true }
  | { ready?: undefined; ok: true; words: Int32Array }
  | { ready?: undefined; ok: false; reason: string; memoryBytes: number };

/**
 * The worker's whole program. It runs from source text (eval), so it must not refer to anything
 * outside itself; it loads @assemblyscript/loader by the URL in workerData.
 */
function sandboxMain(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { parentPort, workerData } = require('node:worker_threads') as typeof import('node:worker_threads');
  const job = workerData as WorkerJob;
  let memory: { readonly buffer: ArrayBuffer } | undefined;
  const reply = (message: WorkerReply): void => parentPort!.postMessage(message);
  void (async () => {
    try {
      const imported = await import(job.loaderUrl);
      const loader = (imported.default ?? imported) as typeof import('@assemblyscript/loader');
      const module = new (globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => object } }).WebAssembly.Module(job.bytes);
      const { exports } = loader.instantiateSync<Record<string, unknown>>(module, {});
      memory = exports.memory as { readonly buffer: ArrayBuffer };
      const call = (name: string, ...args: number[]): number => (exports[name] as (...a: number[]) => number)(...args);
      if (call('fastblock_policy_abi') !== job.abiVersion) throw new Error(`speaks ABI ${call('fastblock_policy_abi')}, the host speaks ${job.abiVersion}`);
      if (call('fastblock_policy_kind') !== job.kind) throw new Error(`is a policy of kind ${call('fastblock_policy_kind')}, expected ${job.kind}`);
      const at = call('fastblock_alloc', job.input.byteLength) >>> 0;
      const inBounds = (ptr: number, words: number): boolean => ptr % 4 === 0 && ptr + words * 4 <= memory!.buffer.byteLength;
      if (!inBounds(at, job.input.length)) throw new Error(`fastblock_alloc returned ${at}, outside its memory`);
      new Int32Array(memory.buffer, at, job.input.length).set(job.input);
      reply({ ready: true });
      const out = call(job.entry, at) >>> 0;
      if (!inBounds(out, job.headerWords)) throw new Error(`returned output pointer ${out}, outside its memory`);
      const header = new Int32Array(memory.buffer, out, job.headerWords);
      const words = job.kind === 1 ? job.headerWords + Math.max(0, header[2]) * (1 + Math.max(0, header[3])) : job.headerWords + Math.max(0, header[2]) * 2;
      if (!inBounds(out, words)) throw new Error(`output of ${words} words runs past its memory`);
      reply({ ok: true, words: new Int32Array(memory.buffer, out, words).slice() });
    } catch (err) {
      reply({ ok: false, reason: err instanceof Error ? err.message : String(err), memoryBytes: memory?.buffer.byteLength ?? 0 });
    }
  })();
}

const WORKER_SOURCE = `const __name = (f) => f;\n(${sandboxMain.toString()})();`;
const LOADER_URL = import.meta.resolve('@assemblyscript/loader');

function refused(reason: string, context: Record<string, unknown> = {}): FastblockError {
  return new FastblockError(ErrorCode.POLICY_REJECTED, `policy refused: ${reason}`, { reason, ...context });
}

/** Runs the kind's entry point on `input` words in a fresh sandbox; resolves with the output words. */
export function runSandboxed(bytes: Uint8Array, kind: PolicyKind, input: Int32Array, limits: SandboxLimits = DEFAULT_LIMITS): Promise<Int32Array> {
  const job: WorkerJob = {
    bytes,
    kind: POLICY_KIND[kind],
    entry: ENTRY_POINT[kind],
    input,
    loaderUrl: LOADER_URL,
    abiVersion: ABI_VERSION,
    headerWords: OUTPUT_HEADER_WORDS,
  };
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: job,
      // The policy's JS side is tiny; a small heap keeps a misbehaving loader from eating the host.
      resourceLimits: { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 32 },
    });
    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      outcome();
    };
    let timer = setTimeout(() => {
      finish(() => reject(refused(`sandbox did not start within ${STARTUP_TIMEOUT_MS} ms`, { limit: 'startup', timeoutMs: STARTUP_TIMEOUT_MS })));
    }, STARTUP_TIMEOUT_MS);
    worker.on('message', (message: WorkerReply) => {
      if (message.ready) {
        clearTimeout(timer);
        timer = setTimeout(() => {
          finish(() => reject(refused(`exceeded its time limit of ${limits.timeoutMs} ms`, { limit: 'time', timeoutMs: limits.timeoutMs })));
        }, limits.timeoutMs);
        return;
      }
      if (message.ok) return finish(() => resolve(message.words));
      const capBytes = limits.memoryPages * WASM_PAGE_BYTES;
      // A stub-runtime policy traps (unreachable) when memory.grow fails at the cap.
      const atCap = message.memoryBytes >= capBytes * 0.9;
      const reason = atCap ? `exceeded its memory cap of ${capBytes / 2 ** 20} MiB (${message.reason})` : `trapped: ${message.reason}`;
      finish(() => reject(refused(reason, { limit: atCap ? 'memory' : 'trap', memoryBytes: message.memoryBytes })));
    });
    worker.on('error', (err) => finish(() => reject(refused(`sandbox failed: ${err.message}`, { limit: 'worker' }))));
    worker.on('exit', (code) => finish(() => reject(refused(`sandbox exited with code ${code} before answering`))));
  });
}
