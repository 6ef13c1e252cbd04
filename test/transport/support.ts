/** Shared helpers of the transport suites: a log capture, a raw socket, a child-process peer. */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { FRAME_VERSION, FrameKind, encodeFrameHead } from '../../kernel/rpc/frame.js';
import { HelloCodec } from '../../kernel/rpc/wire.js';

export interface CapturedLog {
  readonly logger: Logger;
  readonly lines: Record<string, unknown>[];
  /** Resolves with the first line whose msg matches. */
  waitFor(msg: RegExp, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export function captureLog(): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  return {
    logger,
    lines,
    async waitFor(msg, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = lines.find((l) => msg.test(String(l.msg)));
        if (line) return line;
        if (Date.now() > deadline) throw new Error(`no log line matching ${msg}; have: ${lines.map((l) => l.msg).join(' | ')}`);
        await sleep(10);
      }
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function until(condition: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A plain TCP socket, for speaking (or breaking) the protocol by hand. */
export async function rawSocket(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

export function helloFrame(shard = 0): Buffer {
  return encodeFrameHead(FrameKind.HELLO, 0, 0, HelloCodec.encode({ protocol: FRAME_VERSION, targetShard: shard, sourceShard: 0, source: 'raw-test' }), undefined, true);
}

export function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));
}

/** test/transport/echo-peer.ts in a child process; resolves once it listens. */
export async function spawnPeer(port = 0): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./echo-peer.ts', import.meta.url).pathname, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const bound = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{"port"'));
      if (line) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`peer exited early (${code})`)));
  });
  return { child, port: bound };
}

export function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}
