/**
 * Typed errors. Every error that crosses a module boundary is a FastblockError with a stable
 * `code` (what a caller switches on) and a `context` object (what an operator needs to act).
 * Codes that travel on the wire (data RPC replies) are the ErrorCode values below.
 */
export const ErrorCode = {
  /** The request reached a replica that is not the PG's leader; context.leaderHint may name one. */
  NOT_LEADER: 'NOT_LEADER',
  /** The caller's map epoch is older than the server's; refresh the map and retry. */
  STALE_EPOCH: 'STALE_EPOCH',
  /** The device or blobstore has no room for the write. Nothing already written is affected. */
  NO_SPACE: 'NO_SPACE',
  /** The operation did not finish in its time limit. Its outcome is unknown. */
  TIMEOUT: 'TIMEOUT',
  /** A connection or object was closed before the operation finished. Outcome unknown. */
  CLOSED: 'CLOSED',
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  NOT_FOUND: 'NOT_FOUND',
  ALREADY_EXISTS: 'ALREADY_EXISTS',
  /** Stored or received bytes failed a checksum or structural check. */
  CORRUPT: 'CORRUPT',
  IO_ERROR: 'IO_ERROR',
  /** A frame or protocol message from outside broke the protocol. */
  PROTOCOL: 'PROTOCOL',
  /** The resource is held by someone else (an exclusive device lock, a busy group). */
  BUSY: 'BUSY',
  CONFIG_INVALID: 'CONFIG_INVALID',
  PLUGIN: 'PLUGIN',
  POLICY_REJECTED: 'POLICY_REJECTED',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export type ErrorContext = Readonly<Record<string, unknown>>;

export class FastblockError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FastblockError';
    this.code = code;
    this.context = context;
  }

  /** True for errors whose operation may be retried without risk of applying it twice. */
  get retriable(): boolean {
    return this.code === ErrorCode.NOT_LEADER || this.code === ErrorCode.STALE_EPOCH;
  }
}

export function isFastblockError(err: unknown, code?: ErrorCode): err is FastblockError {
  return err instanceof FastblockError && (code === undefined || err.code === code);
}

/** Assertions guard invariants; a failed one is a bug, never bad input. */
export class AssertionError extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`);
    this.name = 'AssertionError';
  }
}

export function assert(condition: unknown, message = 'invariant violated'): asserts condition {
  if (!condition) throw new AssertionError(message);
}
