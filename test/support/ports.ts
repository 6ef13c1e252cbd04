/**
 * Ports for servers a suite starts in other processes (daemons, etcd, QEMU) and must name in
 * advance. They are taken below the kernel's ephemeral range: a port the kernel handed out (listen
 * on 0) and closed again is soon handed to some outgoing connection of a suite running beside this
 * one, and the daemon that later binds it fails with EADDRINUSE. Below the range only a listener
 * can take a port, and a probe sees that.
 *
 * A probe alone leaves a race: two suites in parallel can probe the same free port before either
 * daemon binds it (the clean-clone run of 9ccf495 lost test/metrics/cluster to one, an OSD's
 * metrics port). So a port handed out is also reserved, by a file named for it in a directory all
 * suites share, created exclusively and holding the owner's PID; the process removes its files
 * when it exits, and a file whose owner is gone is taken over.
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOWEST = 20_000;

/** The first port of the ephemeral range (32768 unless the machine says otherwise). */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > LOWEST + 2_000) return first;
  } catch {
    // not Linux: the IANA range
  }
  return 49_152;
}

const HIGHEST = ephemeralStart();

/** Whether nothing listens on 127.0.0.1:port right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const RESERVATIONS = join(tmpdir(), 'fastblock-test-ports');
const reserved: string[] = [];
let cleanupInstalled = false;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Reserves one port for this process; false when a live process holds it. */
function reserve(port: number): boolean {
  const file = join(RESERVATIONS, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      reserved.push(file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = Number.NaN;
      try {
        owner = Number(readFileSync(file, 'utf8'));
      } catch {
        // removed meanwhile: try again
      }
      if (Number.isInteger(owner) && owner > 0 && alive(owner)) return false;
      try {
        unlinkSync(file);
      } catch {
        // another suite took it over first; the next exclusive create decides
      }
    }
  }
  return false;
}

function unreserve(files: readonly string[]): void {
  for (const file of files) {
    try {
      unlinkSync(file);
    } catch {
      // already gone
    }
    const at = reserved.indexOf(file);
    if (at >= 0) reserved.splice(at, 1);
  }
}

/** Reserves P + each offset, all or none. */
function reserveBlock(base: number, offsets: readonly number[]): boolean {
  if (!cleanupInstalled) {
    mkdirSync(RESERVATIONS, { recursive: true });
    process.on('exit', () => unreserve([...reserved]));
    cleanupInstalled = true;
  }
  const taken: string[] = [];
  for (const offset of offsets) {
    if (!reserve(base + offset)) {
      unreserve(taken);
      return false;
    }
    taken.push(join(RESERVATIONS, String(base + offset)));
  }
  return true;
}

/**
 * A base port P such that P + each offset is free, every port below the ephemeral range.
 * Offsets are small non-negative integers (a daemon's port, its shard ports, ...).
 */
export async function freePortBlock(offsets: readonly number[]): Promise<number> {
  const span = Math.max(0, ...offsets) + 1;
  for (let tries = 0; ; tries++) {
    if (tries === 1000) throw new Error(`no free block of ${span} ports below ${HIGHEST}`);
    const base = LOWEST + Math.floor(Math.random() * (HIGHEST - LOWEST - span));
    if (!reserveBlock(base, offsets)) continue;
    if ((await Promise.all(offsets.map((offset) => portFree(base + offset)))).every(Boolean)) return base;
    unreserve(offsets.map((offset) => join(RESERVATIONS, String(base + offset))));
  }
}

/** One free port below the ephemeral range. */
export function freePort(): Promise<number> {
  return freePortBlock([0]);
}
