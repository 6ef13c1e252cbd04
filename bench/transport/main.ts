/**
 * bench/transport: the RPC layer (TCP transport + frame codec + protobuf headers) against a
 * minimal Node `net` echo, in the same run, over loopback. Each server runs in its own process;
 * the clients run here, one side at a time, alternating, best of ROUNDS per figure.
 *
 *   latency      1 request outstanding, 4 KiB payload each way: mean, p50, p99 round trip
 *   throughput   64 requests outstanding, 4 KiB and 128 KiB payloads each way: MiB/s one way
 *
 *   npm run bench -- transport [--seconds S] [--rounds N] [--no-payload-crc]
 *
 * Last line: {"bench":"transport","figures":{...},"ratios":{...}}, ratios >= 1 beat the baseline
 * (throughput project/baseline, latency baseline/project).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { silentLogger } from '../../kernel/logger.js';
import { call } from '../../kernel/rpc/rpc-client.js';
import type { TransportConnection } from '../../kernel/contracts/transport.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { Echo } from './bench-method.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const SECONDS = flag('--seconds', 2);
const ROUNDS = flag('--rounds', 2);
const PAYLOAD_CRC = !args.includes('--no-payload-crc');
const KiB = 1024;
const DEPTH = 64;

interface Throughput {
  readonly ops: number;
  readonly seconds: number;
  readonly mibPerSecond: number;
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

async function spawnPeer(script: string, extra: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL(script, import.meta.url).pathname, ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve((JSON.parse(d.toString().split('\n')[0]!) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`${script} exited (${code})`)));
  });
  return { child, port };
}

// ---- the project: typed RPC calls over the TCP transport

async function rpcLatency(connection: TransportConnection, size: number, seconds: number): Promise<Latency> {
  const payload = [Buffer.alloc(size, 0xab)];
  const samples: number[] = [];
  const end = now() + seconds * 1e6;
  for (let seq = 0; now() < end; seq++) {
    const t0 = now();
    await call(connection, Echo, { seq, length: size }, payload);
    samples.push(now() - t0);
  }
  return latencyOf(samples);
}

async function rpcThroughput(connection: TransportConnection, size: number, depth: number, seconds: number): Promise<Throughput> {
  const payload = [Buffer.alloc(size, 0xcd)];
  let ops = 0;
  const t0 = now();
  const end = t0 + seconds * 1e6;
  const worker = async (): Promise<void> => {
    while (now() < end) {
      const { payload: echoed } = await call(connection, Echo, { seq: ops, length: size }, payload);
      if (echoed.length !== size) throw new Error(`echo of ${echoed.length} bytes, sent ${size}`);
      ops++;
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
  const elapsed = (now() - t0) / 1e6;
  return { ops, seconds: elapsed, mibPerSecond: (ops * size) / elapsed / (1024 * 1024) };
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

async function netLatency(port: number, size: number, seconds: number): Promise<Latency> {
  const echo = await NetEcho.open(port);
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
  echo.close();
  return latencyOf(samples);
}

async function netThroughput(port: number, size: number, depth: number, seconds: number): Promise<Throughput> {
  const echo = await NetEcho.open(port);
  const buffer = Buffer.alloc(size, 0xcd);
  const t0 = now();
  const end = t0 + seconds * 1e6;
  let sent = 0;
  let done = 0;
  const finished = new Promise<void>((resolve) => {
    echo.onBytes = (total) => {
      done = Math.floor(total / size);
      const open = now() < end;
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
  echo.close();
  return { ops: done, seconds: elapsed, mibPerSecond: (done * size) / elapsed / (1024 * 1024) };
}

// ---- the run

const project = await spawnPeer('./rpc-peer.ts', PAYLOAD_CRC ? [] : ['no-payload-crc']);
const baseline = await spawnPeer('./net-peer.ts');
const transport = new TcpTransport({ checksumPayload: PAYLOAD_CRC }, silentLogger());
const connection = transport.connect({ address: { host: '127.0.0.1', port: project.port }, shard: 0 });

try {
  // Warm up both sides (JIT, socket buffers) before measuring.
  await rpcThroughput(connection, 4 * KiB, DEPTH, 0.5);
  await netThroughput(baseline.port, 4 * KiB, DEPTH, 0.5);

  const best = {
    rpcLatency: undefined as Latency | undefined,
    netLatency: undefined as Latency | undefined,
    rpc4k: 0,
    net4k: 0,
    rpc128k: 0,
    net128k: 0,
  };
  const better = (a: Latency | undefined, b: Latency) => (a === undefined || b.meanUs < a.meanUs ? b : a);
  for (let round = 0; round < ROUNDS; round++) {
    best.rpcLatency = better(best.rpcLatency, await rpcLatency(connection, 4 * KiB, SECONDS));
    best.netLatency = better(best.netLatency, await netLatency(baseline.port, 4 * KiB, SECONDS));
    best.rpc4k = Math.max(best.rpc4k, (await rpcThroughput(connection, 4 * KiB, DEPTH, SECONDS)).mibPerSecond);
    best.net4k = Math.max(best.net4k, (await netThroughput(baseline.port, 4 * KiB, DEPTH, SECONDS)).mibPerSecond);
    best.rpc128k = Math.max(best.rpc128k, (await rpcThroughput(connection, 128 * KiB, DEPTH, SECONDS)).mibPerSecond);
    best.net128k = Math.max(best.net128k, (await netThroughput(baseline.port, 128 * KiB, DEPTH, SECONDS)).mibPerSecond);
    console.log(`round ${round + 1}/${ROUNDS} done`);
  }

  const r = (x: number) => Math.round(x * 100) / 100;
  const rpcLat = best.rpcLatency!;
  const netLat = best.netLatency!;
  console.log(`latency 4 KiB qd1     rpc mean ${r(rpcLat.meanUs)} us (p50 ${r(rpcLat.p50Us)}, p99 ${r(rpcLat.p99Us)})   net echo mean ${r(netLat.meanUs)} us (p50 ${r(netLat.p50Us)}, p99 ${r(netLat.p99Us)})`);
  console.log(`throughput 4 KiB qd64   rpc ${r(best.rpc4k)} MiB/s (${Math.round((best.rpc4k * 1024) / 4)} ops/s)   net echo ${r(best.net4k)} MiB/s`);
  console.log(`throughput 128 KiB qd64 rpc ${r(best.rpc128k)} MiB/s   net echo ${r(best.net128k)} MiB/s`);
  console.log(`payload checksums ${PAYLOAD_CRC ? 'on' : 'off'}; ${ROUNDS} rounds of ${SECONDS} s, best of each`);
  console.log(
    JSON.stringify({
      bench: 'transport',
      figures: {
        rpc_latency_4k_qd1_mean_us: r(rpcLat.meanUs),
        rpc_latency_4k_qd1_p50_us: r(rpcLat.p50Us),
        rpc_latency_4k_qd1_p99_us: r(rpcLat.p99Us),
        net_latency_4k_qd1_mean_us: r(netLat.meanUs),
        net_latency_4k_qd1_p50_us: r(netLat.p50Us),
        net_latency_4k_qd1_p99_us: r(netLat.p99Us),
        rpc_throughput_4k_qd64_mib_s: r(best.rpc4k),
        net_throughput_4k_qd64_mib_s: r(best.net4k),
        rpc_throughput_128k_qd64_mib_s: r(best.rpc128k),
        net_throughput_128k_qd64_mib_s: r(best.net128k),
      },
      ratios: {
        latency_4k_qd1_mean: r(netLat.meanUs / rpcLat.meanUs),
        throughput_4k_qd64: r(best.rpc4k / best.net4k),
        throughput_128k_qd64: r(best.rpc128k / best.net128k),
      },
    }),
  );
} finally {
  await transport.close();
  project.child.kill('SIGTERM');
  baseline.child.kill('SIGTERM');
}
