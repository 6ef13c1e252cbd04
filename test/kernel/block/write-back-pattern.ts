/** What write i of write-back-child.ts writes, and where: shared by the child and the test that checks it. */
export function blockOf(i: number, blocks: number): number {
  return (i * 7919) % blocks;
}

export function patternOf(i: number): Uint8Array {
  const bytes = new Uint8Array(4096);
  const view = new DataView(bytes.buffer);
  for (let at = 0; at < 4096; at += 4) view.setUint32(at, (i * 2654435761 + at) >>> 0, true);
  return bytes;
}
