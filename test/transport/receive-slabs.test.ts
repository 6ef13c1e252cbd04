import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LARGEST_SLAB_BYTES, ReceiveSlabPool, SMALLEST_SLAB_BYTES } from '../../kernel/rpc/receive-slabs.js';

const KiB = 1024;

test('slabs come in power-of-two sizes and go back to their own size class', () => {
  const pool = new ReceiveSlabPool();
  assert.is(pool.take(1).bytes.byteLength, SMALLEST_SLAB_BYTES);
  const mid = pool.take(300 * KiB);
  assert.is(mid.bytes.byteLength, 512 * KiB);
  mid.release();
  assert.is(pool.idleSlabBytes, 512 * KiB);
  assert.is(pool.take(200 * KiB).bytes.byteLength, SMALLEST_SLAB_BYTES, 'a smaller need does not take the larger idle slab');
  const again = pool.take(400 * KiB);
  assert.is(again, mid, 'the idle slab of the class is reused');
  assert.is(pool.reused, 1);
});

test('a slab returns to the pool only when its last holder releases it', () => {
  const pool = new ReceiveSlabPool();
  const slab = pool.take(SMALLEST_SLAB_BYTES);
  slab.hold();
  slab.hold();
  slab.release(); // the decoder moved on
  slab.release(); // one frame done
  assert.is(pool.idleSlabBytes, 0, 'a frame still holds it');
  slab.release();
  assert.is(pool.idleSlabBytes, SMALLEST_SLAB_BYTES);
  assert.throws(() => slab.release(), /released more often than it was held/);
});

test('frames larger than the largest slab get a buffer of their own, never pooled; the idle bytes are capped', () => {
  const pool = new ReceiveSlabPool(LARGEST_SLAB_BYTES + SMALLEST_SLAB_BYTES);
  const huge = pool.take(LARGEST_SLAB_BYTES + 1);
  assert.is(huge.bytes.byteLength, LARGEST_SLAB_BYTES + 1);
  huge.release();
  assert.is(pool.idleSlabBytes, 0);
  const slabs = [pool.take(LARGEST_SLAB_BYTES), pool.take(LARGEST_SLAB_BYTES), pool.take(1)];
  for (const slab of slabs) slab.release();
  assert.is(pool.idleSlabBytes, LARGEST_SLAB_BYTES + SMALLEST_SLAB_BYTES, 'one large and one small kept, the second large one dropped');
});

test.run();
