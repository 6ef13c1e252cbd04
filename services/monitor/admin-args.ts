/** Validation of admin-command arguments (JSON from outside): clear errors naming the argument. */
import type { AdminArgs } from '../../kernel/rpc/admin-commands.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function bad(message: string, arg: string): FastblockError {
  return new FastblockError(ErrorCode.INVALID_ARGUMENT, message, { arg });
}

export function name(args: AdminArgs, key: string): string {
  const value = args[key];
  if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    throw bad(`${key} must be 1-64 letters, digits, '_', '.', '-' (starting with a letter or digit), got ${JSON.stringify(value)}`, key);
  }
  return value;
}

/** Free text for operators to read (a client's description): printable, bounded. */
export function text(args: AdminArgs, key: string, maxLength: number): string {
  const value = args[key];
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength || /[\u0000-\u001f\u007f]/.test(value)) {
    throw bad(`${key} must be 1-${maxLength} printable characters, got ${JSON.stringify(value)?.slice(0, 80)}`, key);
  }
  return value;
}

export function optionalName(args: AdminArgs, key: string): string | undefined {
  return args[key] === undefined ? undefined : name(args, key);
}

export function int(args: AdminArgs, key: string, min: number, max: number, fallback?: number): number {
  const value = args[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw bad(`${key} must be an integer in ${min}..${max}, got ${JSON.stringify(args[key])}`, key);
  }
  return value;
}

export function oneOf<T extends string>(args: AdminArgs, key: string, allowed: readonly T[], fallback?: T): T {
  const value = args[key] ?? fallback;
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw bad(`${key} must be one of ${allowed.join(', ')}, got ${JSON.stringify(args[key])}`, key);
  }
  return value as T;
}

export function bool(args: AdminArgs, key: string, fallback = false): boolean {
  const value = args[key] ?? fallback;
  if (typeof value !== 'boolean') throw bad(`${key} must be true or false`, key);
  return value;
}

export function base64(args: AdminArgs, key: string, maxBytes: number): Uint8Array {
  const value = args[key];
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw bad(`${key} must be base64`, key);
  const bytes = new Uint8Array(Buffer.from(value, 'base64'));
  if (bytes.length === 0 || bytes.length > maxBytes) throw bad(`${key} must hold 1..${maxBytes} bytes, got ${bytes.length}`, key);
  return bytes;
}
