/** A started NVMe/TCP target over in-memory volumes, for the suites. */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { NvmfTarget, type NvmfTargetOptions } from '../../../plugins/frontend-nvmf/target.js';
import { MemoryVolumeProvider } from '../../support/memory-volume.js';

export interface StartedTarget {
  readonly target: NvmfTarget;
  readonly provider: MemoryVolumeProvider;
  readonly port: number;
  readonly nqn: string;
  stop(): Promise<void>;
}

export async function startTarget(
  options: Partial<NvmfTargetOptions> = {},
  provider: MemoryVolumeProvider = new MemoryVolumeProvider(64 * 1024 * 1024),
): Promise<StartedTarget> {
  provider.create('rbd/disk0');
  const logger = pino({ level: process.env.NVMF_TEST_LOG ?? 'silent' });
  // Size checks often: a resize test waits for its notice. Write-back logs (a writethrough export
  // looks for one left over) in a directory of this process, never the host's shared default.
  const writeBackDir = join(tmpdir(), `fastblock-nvmf-test-${process.pid}`);
  const target = new NvmfTarget(provider, logger, { port: 0, sizeCheckMs: 20, writeBackDir, ...options });
  await target.start();
  const info = await target.createExport({ volume: 'rbd/disk0' });
  return { target, provider, port: target.port, nqn: info.id, stop: () => target.stop() };
}
