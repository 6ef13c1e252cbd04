/**
 * Ports for servers a suite starts in other processes (daemons, etcd, QEMU) and must name in
 * advance. They are taken below the kernel's ephemeral range: a port the kernel handed out (listen
 * on 0) and closed again is soon handed to some outgoing connection of a suite running beside this
 * one, and the daemon that later binds it fails with EADDRINUSE. Below the range only a listener
 * can take a port, and a probe sees that.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

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

/**
 * A base port P such that P + each offset is free, every port below the ephemeral range.
 * Offsets are small non-negative integers (a daemon's port, its shard ports, ...).
 */
export async function freePortBlock(offsets: readonly number[]): Promise<number> {
  const span = Math.max(0, ...offsets) + 1;
  for (let tries = 0; ; tries++) {
    const base = LOWEST + Math.floor(Math.random() * (HIGHEST - LOWEST - span));
    if ((await Promise.all(offsets.map((offset) => portFree(base + offset)))).every(Boolean)) return base;
    if (tries === 1000) throw new Error(`no free block of ${span} ports below ${HIGHEST}`);
  }
}

/** One free port below the ephemeral range. */
export function freePort(): Promise<number> {
  return freePortBlock([0]);
}
