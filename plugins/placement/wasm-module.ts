/**
 * Admission of a policy module before anything runs: it must be WebAssembly, import nothing but
 * env.abort, export the ABI for its kind, and own its memory. Its declared memory maximum is
 * rewritten to the host's cap, so the engine itself refuses to grow past it (memory.grow fails and
 * the policy traps) — a cap the policy cannot talk its way around.
 */
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { REQUIRED_EXPORTS, type PolicyKind } from './abi.js';
import { wasm } from './webassembly.js';

export const WASM_PAGE_BYTES = 65536;
const MEMORY_SECTION = 5;
const LIMITS_MIN_ONLY = 0x00;
const LIMITS_MIN_MAX = 0x01;

function refused(reason: string): FastblockError {
  return new FastblockError(ErrorCode.POLICY_REJECTED, `not a usable policy module: ${reason}`, { reason });
}

function readLeb(bytes: Uint8Array, at: number): { value: number; next: number } {
  let value = 0;
  let shift = 0;
  for (let i = at; i < bytes.length && i < at + 5; i++) {
    value += (bytes[i] & 0x7f) * 2 ** shift;
    shift += 7;
    if ((bytes[i] & 0x80) === 0) return { value, next: i + 1 };
  }
  throw refused('truncated LEB128 number');
}

function leb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/** Rewrites the memory section so that memory 0 has maximum `capPages`. */
export function capMemory(bytes: Uint8Array, capPages: number): Uint8Array {
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at];
    const size = readLeb(bytes, at + 1);
    const start = size.next;
    const end = start + size.value;
    if (end > bytes.length) throw refused('a section runs past the end of the file');
    if (id === MEMORY_SECTION) {
      const count = readLeb(bytes, start);
      if (count.value !== 1) throw refused(`declares ${count.value} memories, a policy has exactly one`);
      const flags = bytes[count.next];
      if (flags !== LIMITS_MIN_ONLY && flags !== LIMITS_MIN_MAX) throw refused('shared or 64-bit memory is not allowed');
      const min = readLeb(bytes, count.next + 1);
      const max = flags === LIMITS_MIN_MAX ? readLeb(bytes, min.next) : undefined;
      if (min.value > capPages) throw refused(`asks for ${min.value} initial pages, the cap is ${capPages}`);
      const limitsEnd = max === undefined ? min.next : max.next;
      if (limitsEnd !== end) throw refused('malformed memory section');
      const newMax = Math.min(max?.value ?? capPages, capPages);
      const content = [1, LIMITS_MIN_MAX, ...leb(min.value), ...leb(newMax)];
      const section = [MEMORY_SECTION, ...leb(content.length), ...content];
      const out = new Uint8Array(bytes.length - (end - at) + section.length);
      out.set(bytes.subarray(0, at));
      out.set(section, at);
      out.set(bytes.subarray(end), at + section.length);
      return out;
    }
    at = end;
  }
  throw refused('declares no memory of its own');
}

/** Checks a module's shape and returns the bytes to run (memory capped). Throws POLICY_REJECTED. */
export function admitPolicyModule(bytes: Uint8Array, kind: PolicyKind, capPages: number): Uint8Array {
  if (!wasm.validate(bytes)) throw refused('not a valid WebAssembly module');
  const module = new wasm.Module(bytes);
  for (const imp of wasm.Module.imports(module)) {
    if (!(imp.module === 'env' && imp.name === 'abort' && imp.kind === 'function')) {
      throw refused(`imports ${imp.module}.${imp.name} (${imp.kind}); only env.abort is allowed`);
    }
  }
  const exports = new Map(wasm.Module.exports(module).map((e) => [e.name, e.kind]));
  for (const name of REQUIRED_EXPORTS[kind]) {
    const expected = name === 'memory' ? 'memory' : 'function';
    if (exports.get(name) !== expected) throw refused(`does not export ${expected} ${name}: not a ${kind} policy`);
  }
  return capMemory(bytes, capPages);
}
