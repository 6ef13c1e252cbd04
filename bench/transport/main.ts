/**
 * bench/transport: the RPC layer (TCP transport + frame codec + protobuf headers) against a
 * minimal Node `net` echo, in the same run, over loopback. Each server runs in its own process;
 * the clients run here, one side at a time, alternating in slices (--slices per figure and round,
 * SECONDS / slices long each); figures and ratios are medians over rounds.
 *
 *   latency      1 request outstanding, 4 KiB payload each way: mean, p50, p99 round trip
 *   throughput   64 requests outstanding, 4 KiB and 128 KiB payloads each way: MiB/s one way
 *
 *   npm run bench -- transport [--seconds S] [--rounds N] [--slices K] [--no-payload-crc] [--keep]
 *
 * The RPC client consumes each reply as it arrives (callBorrowed: it checks the echoed length, as
 * the baseline counts bytes) and the server's handler borrows the request it echoes, so both
 * reuse their receive slabs; --keep uses call() and a keeping handler (no reuse) instead.
 *
 * Last line: {"bench":"transport","figures":{...},"ratios":{...}}, ratios >= 1 beat the baseline
 * (throughput project/baseline, latency baseline/project). Every process runs with the daemon's
 * node flags (cli/daemon-node-flags.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../kernel/logger.js';
import { call, callBorrowed } from '../../kernel/rpc/rpc-client.js';
import type { TransportConnection } from '../../kernel/contracts/transport.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { DAEMON_NODE_FLAGS } from '../../cli/daemon-node-flags.js';
import { Echo } from './bench-method.js';

// Every process here stands in for a daemon (the RPC client is an OSD or a gateway in real use),
// so all of them, baseline included, run with the daemon's node flags: servers are spawned with
// them, and this process runs again with them if it was started without.
if (!DAEMON_NODE_FLAGS.every((flag) => process.execArgv.includes(flag))) {
  const again = spawnSync(process.execPath, [...DAEMON_NODE_FLAGS, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(again.status ?? 1);
}

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const SECONDS = flag('--seconds', 1);
const ROUNDS = flag('--rounds', 7);
const SLICES = flag('--slices', 4);
const PAYLOAD_CRC = !args.includes('--no-payload-crc');
const BORROW = !args.includes('--keep');
const KiB = 1024;
const MiB = 1024 * KiB;
const DEPTH = 64;

interface Throughput {
  readonly ops: number;
  readonly seconds: number;
}

interface Latency {
  readonly meanUs: number;
  readonly p50Us: number;
  readonly p99Us: number;
}

function latencyOf(samples: number[]): Latency {
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { meanUs: samples.reduce((s, x) => s + x, 0) / samples.length, p50Us: at(0.5), p99Us: at(0.99) };
}

const now = () => Number(process.hrtime.bigint()) / 1000;

/** CPU time (user + system) a process has used, in microseconds, from /proc (10 ms ticks). */
function processCpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * (1e6 / 100);
}

interface Measured extends Throughput {
  /** Client and server CPU: per round trip, what the load of other processes does not change much. */
  readonly cpuUs: number;
}

async function measured(serverPid: number, run: () => Promise<Throughput>): Promise<Measured> {
  const client0 = process.cpuUsage();
  const server0 = processCpuUs(serverPid);
  const result = await run();
  const client = process.cpuUsage(client0);
  const server = processCpuUs(serverPid) - server0;
  return { ops: result.ops, seconds: result.seconds, cpuUs: client.user + client.system + server };
}

function summed(slices: Measured[]): Measured {
  return slices.reduce((a, b) => ({ ops: a.ops + b.ops, seconds: a.seconds + b.seconds, cpuUs: a.cpuUs + b.cpuUs }));
}

const mibPerSecond = (m: Measured, size: number): number => (m.ops * size) / m.seconds / MiB;
const cpuUsPerOp = (m: Measured): number => m.cpuUs / m.ops;

/**
 * One figure for both sides, in SLICES slices each, alternating (P B B P P B ...): a slow spell of
 * the shared machine shorter than a round then falls on both sides, not on one side's second.
 */
async function alternated<T>(project: (seconds: number) => Promise<T>, baseline: (seconds: number) => Promise<T>): Promise<{ project: T[]; baseline: T[] }> {
  const slices = { project: [] as T[], baseline: [] as T[] };
  const seconds = SECONDS / SLICES;
  for (let slice = 0; slice < SLICES; slice++) {
    if (slice % 2 === 0) {
      slices.project.push(await project(seconds));
      slices.baseline.push(await baseline(seconds));
    } else {
      slices.baseline.push(await baseline(seconds));
      slices.project.push(await project(seconds));
    }
  }
  return slices;
}

async function spawnPeer(script: string, extra: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, '--import', 'tsx', new URL(script, import.meta.url).pathname, ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve((JSON.parse(d.toString().split('\n')[0]!) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`${script} exited (${code})`)));
  });
  return { child, port };
}

// ---- the project: typed RPC calls over the TCP transport

/** One echo call; resolves with the echoed payload's length. */
function echo(connection: TransportConnection, seq: number, size: number, payload: Buffer[]): Promise<number> {
  if (BORROW) return callBorrowed(connection, Echo, { seq, length: size }, payload, echoedLength);
  return call(connection, Echo, { seq, length: size }, payload).then((reply) => reply.payload.length);
}

const echoedLength = (_response: unknown, echoed: Uint8Array): number => echoed.length;

async function rpcLatency(connection: TransportConnection, size: number, seconds: number): Promise<number[]> {
  const payload = [Buffer.alloc(size, 0xab)];
  const samples: number[] = [];
  const end = now() + seconds * 1e6;
  for (let seq = 0; now() < end; seq++) {
    const t0 = now();
    await echo(connection, seq, size, payload);
    samples.push(now() - t0);
  }
  return samples;
}

/**
 * True until `seconds` have passed. Both throughput loops test it per request, so neither side
 * pays for reading the clock per request (the baseline reads it per chunk, not per request).
 */
function stopAfter(seconds: number): { readonly open: boolean } {
  const state = { open: true };
  setTimeout(() => (state.open = false), seconds * 1000);
  return state;
}

async function rpcThroughput(connection: TransportConnection, size: number, depth: number, seconds: number): Promise<Throughput> {
  const payload = [Buffer.alloc(size, 0xcd)];
  let ops = 0;
  const t0 = now();
  const running = stopAfter(seconds);
  const worker = async (): Promise<void> => {
    while (running.open) {
      const echoed = await echo(connection, ops, size, payload);
      if (echoed !== size) throw new Error(`echo of ${echoed} bytes, sent ${size}`);
      ops++;
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
  return { ops, seconds: (now() - t0) / 1e6 };
}

// ---- the baseline: raw bytes through a net echo, counted back in request-sized units

class NetEcho {
  private received = 0;
  private waiters: { bytes: number; resolve: () => void }[] = [];
  onBytes: ((total: number) => void) | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      this.onBytes?.(this.received);
      while (this.waiters.length && this.waiters[0]!.bytes <= this.received) this.waiters.shift()!.resolve();
    });
  }

  static async open(port: number): Promise<NetEcho> {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    return new NetEcho(socket);
  }

  get total(): number {
    return this.received;
  }

  write(buffer: Buffer): void {
    this.socket.write(buffer);
  }

  until(bytes: number): Promise<void> {
    if (this.received >= bytes) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ bytes, resolve }));
  }

  close(): void {
    this.socket.destroy();
  }
}

async function netLatency(echo: NetEcho, size: number, seconds: number): Promise<number[]> {
  const buffer = Buffer.alloc(size, 0xab);
  const samples: number[] = [];
  const end = now() + seconds * 1e6;
  while (now() < end) {
    const t0 = now();
    const target = echo.total + size;
    echo.write(buffer);
    await echo.until(target);
    samples.push(now() - t0);
  }
  return samples;
}

async function netThroughput(echo: NetEcho, size: number, depth: number, seconds: number): Promise<Throughput> {
  const buffer = Buffer.alloc(size, 0xcd);
  // Every run ends with nothing outstanding, so the connection's byte count restarts cleanly.
  const before = echo.total;
  const t0 = now();
  const running = stopAfter(seconds);
  let sent = 0;
  let done = 0;
  const finished = new Promise<void>((resolve) => {
    echo.onBytes = (total) => {
      done = Math.floor((total - before) / size);
      const open = running.open;
      // Keep `depth` requests' worth of bytes outstanding, as the RPC side keeps `depth` calls.
      while (open && sent - done < depth) {
        echo.write(buffer);
        sent++;
      }
      if (!open && done === sent) resolve();
    };
  });
  for (; sent < depth; sent++) echo.write(buffer);
  await finished;
  const elapsed = (now() - t0) / 1e6;
  echo.onBytes = undefined;
  return { ops: done, seconds: elapsed };
}

// ---- the run

const project = await spawnPeer('./rpc-peer.ts', [...(PAYLOAD_CRC ? [] : ['no-payload-crc']), ...(BORROW ? [] : ['keep'])]);
const baseline = await spawnPeer('./net-peer.ts');
const transport = new TcpTransport({ checksumPayload: PAYLOAD_CRC }, silentLogger());
const connection = transport.connect({ address: { host: '127.0.0.1', port: project.port }, shard: 0 });
// One connection per side for the whole run, so that neither pays for a cold socket in a slice.
const netEcho = await NetEcho.open(baseline.port);

try {
  // Warm up both sides (JIT, socket buffers, receive slabs) before measuring.
  for (const size of [4 * KiB, 128 * KiB]) {
    await rpcThroughput(connection, size, DEPTH, 0.3);
    await netThroughput(netEcho, size, DEPTH, 0.3);
  }

  // Load on a shared machine drifts; each round measures both sides in alternating slices and
  // yields its own ratio, and the figures are medians over rounds, so a slow spell hits both sides alike.
  const rounds: { rpcLat: Latency; netLat: Latency; rpc4k: Measured; net4k: Measured; rpc128k: Measured; net128k: Measured }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const latency = await alternated(
      (seconds) => rpcLatency(connection, 4 * KiB, seconds),
      (seconds) => netLatency(netEcho, 4 * KiB, seconds),
    );
    const at4k = await alternated(
      (seconds) => measured(project.child.pid!, () => rpcThroughput(connection, 4 * KiB, DEPTH, seconds)),
      (seconds) => measured(baseline.child.pid!, () => netThroughput(netEcho, 4 * KiB, DEPTH, seconds)),
    );
    const at128k = await alternated(
      (seconds) => measured(project.child.pid!, () => rpcThroughput(connection, 128 * KiB, DEPTH, seconds)),
      (seconds) => measured(baseline.child.pid!, () => netThroughput(netEcho, 128 * KiB, DEPTH, seconds)),
    );
    const measures = {
      rpcLat: latencyOf(latency.project.flat()),
      netLat: latencyOf(latency.baseline.flat()),
      rpc4k: summed(at4k.project),
      net4k: summed(at4k.baseline),
      rpc128k: summed(at128k.project),
      net128k: summed(at128k.baseline),
    };
    rounds.push(measures);
    const { rpcLat, netLat, rpc4k, net4k, rpc128k, net128k } = measures;
    console.log(
      `round ${round + 1}/${ROUNDS}: latency ${rpcLat.meanUs.toFixed(1)} vs ${netLat.meanUs.toFixed(1)} us, ` +
        `4 KiB ${mibPerSecond(rpc4k, 4 * KiB).toFixed(0)} vs ${mibPerSecond(net4k, 4 * KiB).toFixed(0)} MiB/s (${cpuUsPerOp(rpc4k).toFixed(1)} vs ${cpuUsPerOp(net4k).toFixed(1)} us CPU/op), ` +
        `128 KiB ${mibPerSecond(rpc128k, 128 * KiB).toFixed(0)} vs ${mibPerSecond(net128k, 128 * KiB).toFixed(0)} MiB/s (${cpuUsPerOp(rpc128k).toFixed(0)} vs ${cpuUsPerOp(net128k).toFixed(0)} us CPU/op)`,
    );
  }

  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const of = (pick: (r: (typeof rounds)[number]) => number) => median(rounds.map(pick));
  const r = (x: number) => Math.round(x * 100) / 100;
  const figures = {
    rpc_latency_4k_qd1_mean_us: r(of((x) => x.rpcLat.meanUs)),
    rpc_latency_4k_qd1_p50_us: r(of((x) => x.rpcLat.p50Us)),
    rpc_latency_4k_qd1_p99_us: r(of((x) => x.rpcLat.p99Us)),
    net_latency_4k_qd1_mean_us: r(of((x) => x.netLat.meanUs)),
    net_latency_4k_qd1_p50_us: r(of((x) => x.netLat.p50Us)),
    net_latency_4k_qd1_p99_us: r(of((x) => x.netLat.p99Us)),
    rpc_throughput_4k_qd64_mib_s: r(of((x) => mibPerSecond(x.rpc4k, 4 * KiB))),
    net_throughput_4k_qd64_mib_s: r(of((x) => mibPerSecond(x.net4k, 4 * KiB))),
    rpc_throughput_128k_qd64_mib_s: r(of((x) => mibPerSecond(x.rpc128k, 128 * KiB))),
    net_throughput_128k_qd64_mib_s: r(of((x) => mibPerSecond(x.net128k, 128 * KiB))),
    rpc_cpu_4k_qd64_us_per_op: r(of((x) => cpuUsPerOp(x.rpc4k))),
    net_cpu_4k_qd64_us_per_op: r(of((x) => cpuUsPerOp(x.net4k))),
    rpc_cpu_128k_qd64_us_per_op: r(of((x) => cpuUsPerOp(x.rpc128k))),
    net_cpu_128k_qd64_us_per_op: r(of((x) => cpuUsPerOp(x.net128k))),
  };
  const ratios = {
    latency_4k_qd1_mean: r(of((x) => x.netLat.meanUs / x.rpcLat.meanUs)),
    latency_4k_qd1_p50: r(of((x) => x.netLat.p50Us / x.rpcLat.p50Us)),
    throughput_4k_qd64: r(of((x) => mibPerSecond(x.rpc4k, 4 * KiB) / mibPerSecond(x.net4k, 4 * KiB))),
    throughput_128k_qd64: r(of((x) => mibPerSecond(x.rpc128k, 128 * KiB) / mibPerSecond(x.net128k, 128 * KiB))),
    cpu_per_op_4k_qd64: r(of((x) => cpuUsPerOp(x.net4k) / cpuUsPerOp(x.rpc4k))),
    cpu_per_op_128k_qd64: r(of((x) => cpuUsPerOp(x.net128k) / cpuUsPerOp(x.rpc128k))),
  };
  console.log(`payload checksums ${PAYLOAD_CRC ? 'on' : 'off'}; receive slabs ${BORROW ? 'reused (borrowed)' : 'not reused (--keep)'}; ${ROUNDS} rounds of ${SECONDS} s per figure and side in ${SLICES} alternating slices; medians; load average ${loadavg()[0]!.toFixed(1)}`);
  console.log(JSON.stringify({ bench: 'transport', figures, ratios }));
} finally {
  netEcho.close();
  await transport.close();
  project.child.kill('SIGTERM');
  baseline.child.kill('SIGTERM');
}
