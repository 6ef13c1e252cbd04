/**
 * fio through its nbd engine (libnbd), as the cluster tests and bench/cluster drive it. Parses the
 * JSON output (the nbd engine prints a line before the JSON, so everything before the first "{"
 * is dropped).
 */
import { spawn } from 'node:child_process';
import { ErrorCode, FastblockError } from '../../../kernel/errors.js';

export interface FioJob {
  readonly uri: string;
  readonly rw: 'randwrite' | 'randread' | 'write' | 'read' | 'randrw';
  readonly bs: string;
  readonly iodepth: number;
  readonly size: string;
  /** Seconds; absent: run through `size` once. */
  readonly runtime?: number;
  readonly extra?: readonly string[];
}

export interface FioSide {
  readonly iops: number;
  readonly bwMiBps: number;
  readonly p50Us: number;
  readonly p99Us: number;
  /** The slowest I/O: the longest a request waited (e.g. across a failover). */
  readonly maxUs: number;
  readonly ios: number;
}

export interface FioResult {
  readonly read: FioSide;
  readonly write: FioSide;
  readonly error: number;
  readonly exitCode: number;
  readonly stderr: string;
}

interface FioJsonSide {
  iops: number;
  bw_bytes: number;
  total_ios: number;
  clat_ns?: { percentile?: Record<string, number>; max?: number };
}

function side(json: FioJsonSide): FioSide {
  const pct = json.clat_ns?.percentile ?? {};
  return {
    iops: Math.round(json.iops),
    bwMiBps: Math.round((json.bw_bytes / 1048576) * 100) / 100,
    p50Us: Math.round((pct['50.000000'] ?? 0) / 1000),
    p99Us: Math.round((pct['99.000000'] ?? 0) / 1000),
    maxUs: Math.round((json.clat_ns?.max ?? 0) / 1000),
    ios: json.total_ios,
  };
}

export function fioArgs(job: FioJob, name = 'job'): string[] {
  return [
    `--name=${name}`,
    '--ioengine=nbd',
    `--uri=${job.uri}`,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    `--iodepth=${job.iodepth}`,
    `--size=${job.size}`,
    ...(job.runtime ? [`--runtime=${job.runtime}`, '--time_based=1'] : []),
    '--output-format=json',
    ...(job.extra ?? []),
  ];
}

export function runFio(job: FioJob, options: { onSpawn?: (pid: number) => void } = {}): Promise<FioResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('fio', fioArgs(job), { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid) options.onSpawn?.(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const start = stdout.indexOf('{');
      if (start < 0) {
        reject(new FastblockError(ErrorCode.IO_ERROR, `fio produced no JSON (exit ${code}): ${stderr.trim().slice(0, 500)}`, { args: fioArgs(job) }));
        return;
      }
      try {
        const json = JSON.parse(stdout.slice(start)) as { jobs: Array<{ error: number; read: FioJsonSide; write: FioJsonSide }> };
        const first = json.jobs[0];
        resolve({ read: side(first.read), write: side(first.write), error: first.error, exitCode: code ?? -1, stderr });
      } catch (err) {
        reject(new FastblockError(ErrorCode.IO_ERROR, `fio output unparsable (exit ${code})`, { stderr: stderr.slice(0, 500) }, { cause: err }));
      }
    });
  });
}
