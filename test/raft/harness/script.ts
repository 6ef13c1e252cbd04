/**
 * The data-driven script format (after cockroachdb/datadriven): a command line, `----`, the
 * expected output, a blank line. Lines starting with # are comments. Arguments are positional
 * words or key=value pairs.
 */
export interface Case {
  readonly line: number;
  readonly command: string;
  readonly positional: string[];
  readonly args: Map<string, string>;
  readonly input: string;
  readonly expected: string;
  /** Comment lines just before the command, kept when goldens are rewritten. */
  readonly comments: string[];
}

export function parseScript(text: string): Case[] {
  const lines = text.split('\n');
  const cases: Case[] = [];
  let i = 0;
  let comments: string[] = [];
  while (i < lines.length) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) {
      if (line.startsWith('#')) comments.push(line);
      i++;
      continue;
    }
    const start = i + 1;
    const [command, ...words] = line.split(/\s+/);
    i++;
    if (lines[i]?.trim() !== '----') throw new Error(`line ${start}: expected ---- after "${line}"`);
    i++;
    const expected: string[] = [];
    while (i < lines.length && lines[i] !== '') {
      // A command directly after an expected block (no blank line) would be read as output.
      if (lines[i + 1]?.trim() === '----') throw new Error(`line ${i + 1}: blank line missing before "${lines[i]}"`);
      expected.push(lines[i++]!);
    }
    const positional: string[] = [];
    const args = new Map<string, string>();
    for (const w of words) {
      const eq = w.indexOf('=');
      if (eq > 0) args.set(w.slice(0, eq), w.slice(eq + 1));
      else positional.push(w);
    }
    cases.push({ line: start, command: command!, positional, args, input: line, expected: expected.join('\n'), comments });
    comments = [];
  }
  return cases;
}

export function renderScript(cases: readonly { comments: readonly string[]; input: string; actual: string }[]): string {
  return cases.map((c) => `${c.comments.map((l) => `${l}\n`).join('')}${c.input}\n----\n${c.actual === '' ? 'ok' : c.actual}\n`).join('\n');
}
