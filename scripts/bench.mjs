// npm run bench -- NAME [args]: runs bench/NAME/main.ts. Its last output line is one JSON object
// {"bench": NAME, "figures": {...}, "ratios": {...}}.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [name, ...args] = process.argv.slice(2);
const available = existsSync(join(root, 'bench')) ? readdirSync(join(root, 'bench')).filter((d) => existsSync(join(root, 'bench', d, 'main.ts'))) : [];
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- NAME   (NAME one of: ${available.join(', ') || 'none yet'})`);
  process.exit(2);
}
const result = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench', name, 'main.ts'), ...args], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
