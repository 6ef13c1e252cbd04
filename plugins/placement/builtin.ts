/** The built-in policies, compiled by policies/build.mjs into policies/build/. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import type { PolicyKind } from './abi.js';

/** Works from the sources (tsx) and from dist/ alike: both sit two levels below the root. */
function repoRoot(): URL {
  const here = new URL('.', import.meta.url);
  const root = new URL('../../', here);
  return root.pathname.endsWith('/dist/') ? new URL('../', root) : root;
}

export const BUILTIN_POLICY_NAME: Readonly<Record<PolicyKind, string>> = { placement: 'builtin-calculator', leader: 'builtin-even-leaders' };

export function builtinPolicyPath(kind: PolicyKind): string {
  return fileURLToPath(new URL(`policies/build/${kind}.wasm`, repoRoot()));
}

export function builtinPolicyBytes(kind: PolicyKind): Uint8Array {
  const path = builtinPolicyPath(kind);
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    throw new FastblockError(ErrorCode.PLUGIN, `built-in ${kind} policy not built; run npm run build`, { path }, { cause: err });
  }
}
