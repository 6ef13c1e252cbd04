/**
 * kernel/utf8: the ASCII fast path and its fallback encode exactly what TextEncoder does, for
 * ASCII, for non-ASCII at any position (the fallback takes over after ASCII was copied), for
 * surrogate pairs and lone surrogates; writeUtf8 writes only its own bytes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeUtf8, writeUtf8 } from '../../kernel/utf8.js';

const reference = new TextEncoder();
const samples = [
  '',
  'a',
  'img-3f2a9c1b7e5d4a60.00000000000001a3',
  '\x7f\x00\x01 ~',
  'é',
  'objet-é',
  'ascii then 名前',
  '😀 at the start',
  'a lone surrogate \ud800 here',
  'ends with a lone high surrogate \ud83d',
];

test('encodeUtf8 encodes as TextEncoder does', () => {
  for (const text of samples) assert.equal([...encodeUtf8(text)], [...reference.encode(text)], JSON.stringify(text));
});

test('writeUtf8 writes the same bytes at the offset, touches nothing else, and returns the end', () => {
  for (const text of samples) {
    const expected = reference.encode(text);
    const out = new Uint8Array(expected.length + 10).fill(0xaa);
    const end = writeUtf8(text, out, 3);
    assert.is(end, 3 + expected.length, JSON.stringify(text));
    assert.equal([...out.subarray(3, end)], [...expected], JSON.stringify(text));
    assert.ok(out.subarray(0, 3).every((b) => b === 0xaa) && out.subarray(end).every((b) => b === 0xaa), `bytes outside the name untouched: ${JSON.stringify(text)}`);
  }
});

test('Buffer.byteLength sizes what writeUtf8 writes', () => {
  for (const text of samples) {
    const out = new Uint8Array(Buffer.byteLength(text, 'utf8'));
    assert.is(writeUtf8(text, out, 0), out.length, JSON.stringify(text));
  }
});

test.run();
