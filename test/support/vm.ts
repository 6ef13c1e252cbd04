/**
 * Throw-away QEMU TCG guests for the frontend suites: the guest's real kernel initiators (virtio-blk
 * over vhost-user-blk, nbd.ko + nbd-client, nvme-tcp + nvme-cli) against servers on this host.
 *
 * The guest image (kernel + busybox initramfs) comes from test/vm/guest-image.sh, cached under
 * .fastblock-test/vm/. A test hands over a shell script; the guest runs it under `sh -e` and the
 * result is read from markers on the serial console. QEMU is killed by its PID when the guest is
 * done, times out, or the test process exits. See test/vm/README.md.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, createWriteStream, openSync, closeSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cacheDir = join(root, '.fastblock-test', 'vm');

export interface GuestImage {
  readonly vmlinux: string;
  readonly initramfs: string;
  readonly kernelVersion: string;
}

let image: GuestImage | undefined;

/** Builds the guest image when missing or stale (installing what it needs), once per process. */
export function guestImage(): GuestImage {
  if (image) return image;
  const result = spawnSync('bash', [join(root, 'test', 'vm', 'guest-image.sh'), cacheDir], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const dir = result.stdout.trim().split('\n').pop();
  if (result.status !== 0 || !dir) {
    throw new FastblockError(ErrorCode.INTERNAL, 'cannot build the test guest image', { status: result.status, signal: result.signal });
  }
  image = {
    vmlinux: join(dir, 'vmlinux'),
    initramfs: join(dir, 'initramfs.cpio'),
    kernelVersion: readFileSync(join(dir, 'kver'), 'utf8').trim(),
  };
  return image;
}

export interface GuestOptions {
  /** Shell text the guest runs under busybox `sh -e`; its exit code is the result. */
  readonly script: string;
  /** QEMU arguments for the guest's devices, e.g. from vhostUserBlk() and userNet(). */
  readonly devices?: readonly string[];
  /** Variables exported to the script. */
  readonly env?: Readonly<Record<string, string | number>>;
  /** Kernel modules loaded before the script (virtio_pci, virtio_blk and virtio_net always are). */
  readonly modules?: readonly string[];
  /** Share the host's / read-only at /host; `host fio ...` then runs the host's fio in the guest. */
  readonly hostfs?: boolean;
  /** QEMU is killed after this long; default 120 s. */
  readonly timeoutMs?: number;
  readonly memoryMiB?: number;
  readonly cpus?: number;
  /** Called with each console line as it arrives (progress markers for host-side actions). */
  readonly onLine?: (line: string) => void;
}

export interface GuestResult {
  /** The script's exit code; null when the guest never reported one (crash, timeout). */
  readonly exitCode: number | null;
  /** What the script printed (between the markers). */
  readonly output: string;
  /** The whole serial console, for diagnosis. */
  readonly console: string;
  readonly timedOut: boolean;
  readonly wallMs: number;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
});

/** A running guest: wait for console lines while it runs, then for its result. */
export class Guest {
  private readonly lines: string[] = [];
  private readonly waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  readonly done: Promise<GuestResult>;

  constructor(private readonly child: ChildProcess, options: GuestOptions, consoleLog: string, cleanup: (result: GuestResult) => void) {
    const started = Date.now();
    const log = createWriteStream(consoleLog);
    let pending = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.kill();
    }, options.timeoutMs ?? 120_000);
    const onData = (chunk: Buffer): void => {
      log.write(chunk);
      pending += chunk.toString('latin1').replace(/\r/g, '');
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        this.lines.push(line);
        options.onLine?.(line);
        for (const waiter of this.waiters) {
          if (waiter.pattern.test(line)) {
            this.waiters.delete(waiter);
            waiter.resolve(line);
          }
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.done = new Promise((resolve) => {
      child.on('close', () => {
        clearTimeout(timer);
        live.delete(child);
        if (pending) this.lines.push(pending);
        const result = parseConsole(this.lines, timedOut, Date.now() - started);
        log.end(() => {
          cleanup(result);
          resolve(result);
        });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolves with the first console line (already seen or still to come) that matches. */
  waitForLine(pattern: RegExp, timeoutMs = 60_000): Promise<string> {
    const seen = this.lines.find((line) => pattern.test(line));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        pattern,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new FastblockError(ErrorCode.TIMEOUT, `guest printed no line matching ${pattern}`, { timeoutMs, tail: this.lines.slice(-20) }));
      }, timeoutMs);
      this.waiters.add(waiter);
      void this.done.then(() => {
        if (!this.waiters.delete(waiter)) return;
        clearTimeout(timer);
        reject(new FastblockError(ErrorCode.CLOSED, `guest ended before printing a line matching ${pattern}`, { tail: this.lines.slice(-20) }));
      });
    });
  }

  kill(): void {
    if (this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) {
      process.kill(this.child.pid, 'SIGKILL');
    }
  }
}

function parseConsole(lines: readonly string[], timedOut: boolean, wallMs: number): GuestResult {
  const begin = lines.indexOf('@@FB-BEGIN');
  const rcLine = lines.findIndex((line) => line.startsWith('@@FB-RC='));
  const exitCode = rcLine >= 0 ? Number(lines[rcLine]!.slice('@@FB-RC='.length)) : null;
  const output = begin >= 0 ? lines.slice(begin + 1, rcLine >= 0 ? rcLine : undefined).join('\n') : '';
  return { exitCode, output, console: lines.join('\n'), timedOut, wallMs };
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Boots a guest running options.script; the guest runs until it powers off or is killed. */
export function startGuest(options: GuestOptions): Guest {
  const { vmlinux, initramfs } = guestImage();
  mkdirSync(join(cacheDir, 'runs'), { recursive: true });
  const work = mkdtempSync(join(cacheDir, 'runs', 'guest-'));
  // The per-run files travel as a second cpio appended to the cached initramfs; the kernel merges both.
  const overlay = join(work, 'overlay');
  mkdirSync(join(overlay, 'fastblock'), { recursive: true });
  const env: Record<string, string | number> = {
    ...options.env,
    HOSTFS: options.hostfs ? '1' : '',
    GUEST_MODULES: (options.modules ?? []).join(' '),
  };
  writeFileSync(
    join(overlay, 'fastblock', 'env'),
    Object.entries(env)
      .map(([name, value]) => `export ${name}=${shellQuote(String(value))}\n`)
      .join(''),
  );
  writeFileSync(join(overlay, 'fastblock', 'run.sh'), options.script);
  const initrd = join(work, 'initrd.cpio');
  writeFileSync(initrd, readFileSync(initramfs));
  const fd = openSync(initrd, 'a');
  const cpio = spawnSync('sh', ['-c', 'find . | cpio -o -H newc --quiet'], { cwd: overlay, stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  if (cpio.status !== 0) throw new FastblockError(ErrorCode.INTERNAL, 'cpio failed building the guest overlay', { status: cpio.status });

  const memory = options.memoryMiB ?? 512;
  const args = [
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-serial', 'stdio', '-monitor', 'none',
    // Named threads ("CPU 0/TCG", ...): bench/vhost tells the vCPUs' CPU from the rest of QEMU's.
    '-name', 'fastblock-guest,debug-threads=on',
    '-machine', 'q35,memory-backend=mem0', '-accel', 'tcg,thread=multi', '-cpu', 'max', '-smp', String(options.cpus ?? 2),
    // Guest RAM in a shared memfd: a vhost-user back-end maps it, so it must be share=on.
    '-object', `memory-backend-memfd,id=mem0,size=${memory}M,share=on`, '-m', `${memory}M`,
    '-kernel', vmlinux, '-initrd', initrd,
    // no_timer_check: on a loaded host a TCG guest can miss the timer interrupts the kernel counts
    // at boot and panic ("IO-APIC + timer doesn't work"); the check says nothing about a VM.
    '-append', 'console=ttyS0 panic=-1 quiet loglevel=4 nokaslr tsc=reliable no_timer_check',
    ...(options.hostfs
      ? ['-fsdev', 'local,id=hostfs,path=/,security_model=none,readonly=on', '-device', 'virtio-9p-pci,fsdev=hostfs,mount_tag=hostfs']
      : []),
    ...(options.devices ?? []),
  ];
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  // A guest that failed keeps its console in the run directory for diagnosis; one that passed leaves nothing.
  return new Guest(child, options, join(work, 'console.log'), (result) => rmSync(result.exitCode === 0 ? work : initrd, { recursive: true, force: true }));
}

/** Boots a guest, runs options.script and returns its result; QEMU is gone when this resolves. */
export async function bootGuest(options: GuestOptions): Promise<GuestResult> {
  const guest = startGuest(options);
  try {
    return await guest.done;
  } finally {
    guest.kill();
  }
}

export interface VhostUserBlkOptions {
  /** Distinct per device of one guest; default "vub0". */
  readonly id?: string;
  readonly queues?: number;
  /** QEMU re-dials the socket every this many seconds after the back-end goes away. */
  readonly reconnectSeconds?: number;
}

/**
 * A virtio-blk disk served by a vhost-user back-end on `socket`. Disks enumerate in argument order as
 * /dev/vda, /dev/vdb, ... (they are the guest's only virtio-blk devices).
 */
export function vhostUserBlk(socket: string, options: VhostUserBlkOptions = {}): string[] {
  const id = options.id ?? 'vub0';
  const reconnect = options.reconnectSeconds === undefined ? '' : `,reconnect=${options.reconnectSeconds}`;
  return ['-chardev', `socket,id=${id},path=${socket}${reconnect}`, '-device', `vhost-user-blk-pci,chardev=${id},num-queues=${options.queues ?? 1}`];
}

export interface UserNetOptions {
  /** Host-to-guest forwards, e.g. "tcp:127.0.0.1:31422-10.0.2.15:4420". */
  readonly hostfwd?: readonly string[];
  /** Guest-to-host forwards to somewhere other than 127.0.0.1, e.g. "tcp:10.0.2.100:80-cmd:..." */
  readonly guestfwd?: readonly string[];
}

/**
 * A user-mode NIC: the guest is 10.0.2.15 and reaches the host's 127.0.0.1:P at 10.0.2.2:P. The guest
 * has no default route, so it can address nothing outside 10.0.2.0/24.
 */
export function userNet(options: UserNetOptions = {}): string[] {
  const forwards = [...(options.hostfwd ?? []).map((f) => `,hostfwd=${f}`), ...(options.guestfwd ?? []).map((f) => `,guestfwd=${f}`)];
  return ['-netdev', `user,id=net0,net=10.0.2.0/24,host=10.0.2.2${forwards.join('')}`, '-device', 'virtio-net-pci,netdev=net0'];
}

/** Why VM suites cannot run here, or null when they can (QEMU present or installable). */
export function vmSkipReason(): string | null {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `VM guests need linux/x64, not ${process.platform}/${process.arch}`;
  try {
    guestImage();
    return null;
  } catch (err) {
    return `cannot build the test guest: ${(err as Error).message}`;
  }
}
