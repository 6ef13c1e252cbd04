/** CRC32C against the iSCSI test vectors (RFC 3720, B.4) and the check value, whole and in pieces. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crc32c, crc32cOf } from '../../plugins/frontend-nvmf/tcp/crc32c.js';

const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
const descending = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);

test('RFC 3720 vectors and the "123456789" check value', () => {
  assert.is(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.is(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.is(crc32c(ascending), 0x46dd794e);
  assert.is(crc32c(descending), 0x113fdb5c);
  assert.is(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  assert.is(crc32c(new Uint8Array(0)), 0);
});

test('a scatter list digests like the buffer it splits', () => {
  const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 131) & 0xff);
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    assert.is(crc32cOf([data.subarray(0, cut), data.subarray(cut)]), crc32c(data), `cut at ${cut}`);
  }
});

test.run();
