/**
 * The daemon's root logger: pino, one JSON object per line on stdout (pipe through `npx
 * pino-pretty` to read it). Plugins log through children bound to { plugin: name }.
 */
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export interface LoggerOptions {
  readonly level: LogLevel;
  /** The daemon's name, on every line. */
  readonly name?: string;
  /** Where lines go; default stdout (file descriptor 1, written synchronously so exits lose nothing). */
  readonly destination?: number | NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? 1;
  const stream = typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination;
  return pino(
    {
      level: options.level,
      base: options.name ? { daemon: options.name, pid: process.pid } : { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
}

/** A logger that drops everything: for library use and tests that assert on nothing logged. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

export type { Logger };
