/**
 * qemu-storage-daemon exporting a raw file over NBD: the no-replication ceiling of an NBD server
 * on this machine, the baseline of bench/cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createConnection } from 'node:net';

export interface QsdExport {
  readonly uri: string;
  readonly pid: number;
  stop(): Promise<void>;
}

async function waitForPort(port: number, deadlineMs: number): Promise<void> {
  while (Date.now() < deadlineMs) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`qemu-storage-daemon did not listen on ${port}`);
}

export async function startQsdExport(file: string, port: number, name = 'disk'): Promise<QsdExport> {
  const child: ChildProcess = spawn(
    'qemu-storage-daemon',
    [
      '--blockdev', `driver=file,node-name=file0,filename=${file},cache.direct=on,aio=io_uring`,
      '--nbd-server', `addr.type=inet,addr.host=127.0.0.1,addr.port=${port}`,
      '--export', `type=nbd,id=exp0,node-name=file0,name=${name},writable=on`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  try {
    await waitForPort(port, Date.now() + 10_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}: ${stderr.trim()}`);
  }
  return {
    uri: `nbd://127.0.0.1:${port}/${name}`,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}
