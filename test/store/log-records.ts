/** Raft log records for the DiskLog tests (both modes), and how two lists of them are compared. */
import * as assert from 'uvu/assert';
import type { LogRecord } from '../../kernel/contracts/store.js';
import { pattern } from './devices.js';

/** `count` records from index `from` in `term`, of varied sizes and types. */
export function records(from: number, count: number, term: number, size = 100): LogRecord[] {
  return Array.from({ length: count }, (_, i) => ({ index: from + i, term, type: (from + i) % 3, data: pattern(from + i + term * 1000, size + ((from + i) % 7) * 13) }));
}

export function same(actual: LogRecord[], expected: LogRecord[]): void {
  assert.is(actual.length, expected.length);
  actual.forEach((r, i) => {
    assert.is(r.index, expected[i].index);
    assert.is(r.term, expected[i].term);
    assert.is(r.type, expected[i].type);
    assert.ok(Buffer.from(r.data).equals(Buffer.from(expected[i].data)), `data of ${r.index}`);
  });
}
