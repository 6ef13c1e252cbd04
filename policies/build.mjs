// Compiles the built-in policies (AssemblyScript) to policies/build/<name>.wasm. scripts/build.mjs
// runs this after tsc. Skips a policy whose .wasm is newer than every source in its folder.
import asc from 'assemblyscript/asc';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, 'build');

/** Flags every policy is built with; docs/policies.md shows the same line for authors. */
export const ASC_FLAGS = ['-O3', '--runtime', 'stub', '--noAssert', '--uncheckedBehavior', 'always', '--maximumMemory', '1024'];

const policies = ['placement', 'leader'];

function newest(dir) {
  return Math.max(...readdirSync(dir).map((f) => statSync(join(dir, f)).mtimeMs));
}

mkdirSync(outDir, { recursive: true });
for (const name of policies) {
  const source = join(here, name);
  const target = join(outDir, `${name}.wasm`);
  if (existsSync(target) && statSync(target).mtimeMs > newest(source)) continue;
  const { error, stderr } = await asc.main([join(source, 'index.ts'), '-o', target, ...ASC_FLAGS]);
  if (error) {
    console.error(stderr.toString());
    console.error(`[policies] ${name}: ${error.message}`);
    process.exit(1);
  }
  console.log(`[policies] built ${name}.wasm (${statSync(target).size} bytes)`);
}
