import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { kernelAddon, kernelAddonError } from '../../kernel/native.js';
import { checksumImplementation, crc32 } from '../../kernel/rpc/checksum.js';

const data = randomBytes(1 << 20);

if (kernelAddon === undefined) {
  console.log(`SKIP kernel addon not built (npm run build): ${kernelAddonError?.message ?? 'unknown'}`);
} else {
  const addon = kernelAddon;
  console.log(`kernel addon CRC-32 path: ${addon.crc32Path}; frame checksum uses ${checksumImplementation}`);

  test('the addon computes zlib\'s CRC-32 at every length around its block sizes, at any alignment, from any seed', () => {
    // Lengths cross the 16-byte block, 64-byte four-lane and 256-byte AVX-512 steps and their tails.
    for (let length = 0; length <= 1100; length++) {
      const at = length % 61;
      const view = data.subarray(at, at + length);
      const seed = (length * 0x9e3779b1) >>> 0;
      assert.is(addon.crc32(view, seed), zlibCrc32(view, seed), `length ${length} at ${at}`);
      assert.is(addon.crc32(view), zlibCrc32(view), `length ${length}, no seed`);
    }
  });

  test('large buffers, and one checksum continued across parts equals the checksum of the whole', () => {
    for (const length of [4096, 65_536 + 13, 131_072, 131_072 + 24 + 37, data.length - 7]) {
      const view = data.subarray(7, 7 + length);
      assert.is(addon.crc32(view), zlibCrc32(view), `length ${length}`);
      const cut = (length / 3) | 0;
      assert.is(addon.crc32(view.subarray(cut), addon.crc32(view.subarray(0, cut))), zlibCrc32(view), `chained at ${cut}`);
    }
  });

  test('the frame checksum uses the addon when its CPU path is accelerated', () => {
    if (addon.crc32Accelerated) assert.match(checksumImplementation, /kernel addon/);
    assert.is(crc32(data), zlibCrc32(data));
  });
}

test.run();
