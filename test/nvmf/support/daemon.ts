/**
 * fastblockd with the nvmf plugin over in-memory volumes (support/volumes-plugin.ts), started as a
 * child process, and the control-RPC calls the suites make to it.
 */
import { runAdmin } from '../../../kernel/rpc/control.js';
import { withDaemon } from '../../../cli/daemon-client.js';
import { FASTBLOCKD, start, type Running } from '../../cli/daemon-process.js';

export interface NvmfDaemon {
  readonly process: Running;
  /** Control address (daemon.listen). */
  readonly addr: string;
  /** NVMe/TCP port. */
  readonly port: number;
  admin(command: string, args?: Record<string, unknown>): Promise<unknown>;
  /** md5 and all-zero flag of a byte range, as the volume holds it. */
  digest(volume: string, offset: number, length: number): Promise<{ md5: string; zero: boolean }>;
  stop(): Promise<void>;
}

/** The in-memory volumes of support/volumes-plugin.ts; a gateway names the client plugin instead. */
export const MEMORY_VOLUMES = './test/nvmf/support/volumes-plugin.ts';

export async function startNvmfDaemon(settings: readonly string[], extraPlugins: readonly string[] = [], provider = MEMORY_VOLUMES): Promise<NvmfDaemon> {
  const plugins = ['tcp', provider, 'nvmf', ...extraPlugins].join(',');
  const sets = ['nvmf.port=0', ...settings].flatMap((s) => ['--set', s]);
  const child = start(FASTBLOCKD, ['--plugins', plugins, '--listen', '127.0.0.1:0', ...sets]);
  const ready = await child.waitFor(/fastblockd ready/, 30_000);
  const listening = await child.waitFor(/NVMe\/TCP target listening/);
  const addr = String(ready.listen);
  const admin = (command: string, args: Record<string, unknown> = {}) => withDaemon(addr, 10_000, (c) => runAdmin(c, command, args));
  return {
    process: child,
    addr,
    port: Number(listening.port),
    admin,
    digest: async (volume, offset, length) => (await admin('test-volume digest', { volume, offset, length })) as { md5: string; zero: boolean },
    stop: async () => {
      if (child.child.exitCode === null) child.child.kill('SIGTERM');
      const finished = await child.exit;
      if (finished.code !== 0) throw new Error(`fastblockd exited ${finished.code ?? finished.signal}: ${finished.stderr}`);
    },
  };
}
