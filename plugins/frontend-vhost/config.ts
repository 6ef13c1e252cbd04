/**
 * The `vhost` section of the configuration: controllers created at start, each
 * "pool/image=/path/to.sock" or "pool/image=/path/to.sock:QUEUES".
 */
import type { Schema } from 'convict';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

export interface VhostConfig {
  readonly controllers: readonly string[];
  /** Queues of a controller whose entry names none. */
  readonly defaultQueues: number;
  /** How often volumes are checked for a resize to tell the front-end of (ms). */
  readonly sizeCheckMs: number;
}

export const vhostConfigSchema: Schema<VhostConfig> = {
  controllers: { doc: 'controllers created at start: "pool/image=/path/sock[:queues]"', format: Array, default: [] },
  defaultQueues: { doc: 'virtqueues of a controller whose entry names none', format: 'nat', default: 2 },
  sizeCheckMs: {
    doc: 'how often volumes are checked for a resize, which the front-end is told of through a config change notice (ms)',
    format: (value: unknown) => {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 10) throw new Error('must be an integer of at least 10 (ms)');
    },
    default: 1000,
  },
};

export const VHOST_CONFIG_DEFAULTS: VhostConfig = { controllers: [], defaultQueues: 2, sizeCheckMs: 1000 };

export interface ControllerEntry {
  readonly volume: string;
  readonly socket: string;
  readonly queues: number;
}

export function parseControllerEntry(entry: string, defaultQueues: number): ControllerEntry {
  const match = /^([^=]+)=([^:]+)(?::(\d+))?$/.exec(entry);
  if (!match) throw new FastblockError(ErrorCode.CONFIG_INVALID, `vhost controller entry "${entry}" is not "pool/image=/path/sock[:queues]"`, { entry });
  return { volume: match[1]!, socket: match[2]!, queues: match[3] ? Number(match[3]) : defaultQueues };
}
