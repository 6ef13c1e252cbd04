import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runBlockBench } from '../../client/block-bench.js';
import { MemoryVolume } from '../support/memory-volume.js';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';

test('a mixed verify run reports rates and percentiles and verifies reads', async () => {
  const volume = new MemoryVolume('rbd/bench', 4 * 1024 * 1024);
  let progress = 0;
  const result = await runBlockBench(volume, { readPercent: 50, blockSize: 4096, queueDepth: 8, durationMs: 300, pattern: 'random', verify: true, onProgress: () => progress++, progressIntervalMs: 50 });
  assert.ok(result.reads > 0 && result.writes > 0);
  assert.ok(result.iops > 0 && result.bandwidthMiBps > 0);
  assert.ok(result.latency.p50Us <= result.latency.p99Us && result.latency.p99Us <= result.latency.p999Us);
  assert.ok(result.verifiedBlocks > 0, 'some reads hit written blocks');
  assert.ok(progress > 0);
});

test('verify catches a volume that loses writes', async () => {
  const volume = new MemoryVolume('rbd/lossy', 64 * 1024);
  const write = volume.write.bind(volume);
  let n = 0;
  volume.write = async (offset, data) => {
    if (++n % 5 !== 0) await write(offset, data);
  };
  try {
    await runBlockBench(volume, { readPercent: 50, blockSize: 4096, queueDepth: 2, durationMs: 500, pattern: 'random', verify: true });
    assert.unreachable('lost writes must be detected');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.CORRUPT), String(err));
  }
});

test.run();
