/**
 * What a volume error becomes on the wire. NBD allows only a handful of error values; the client
 * (a kernel, qemu) turns them into the errno its caller sees, so the choice is what an application
 * should be told: out of space is ENOSPC (a filesystem reacts to it), a bad range is EINVAL, a
 * volume closed under us because the gateway is stopping is ESHUTDOWN (the client then disconnects
 * cleanly), and everything whose outcome is unknown is EIO.
 */
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { Errno } from './protocol.js';

export function errnoOf(err: unknown): Errno {
  if (!isFastblockError(err)) return Errno.EIO;
  switch (err.code) {
    case ErrorCode.NO_SPACE:
      return Errno.ENOSPC;
    case ErrorCode.INVALID_ARGUMENT:
      return Errno.EINVAL;
    case ErrorCode.CLOSED:
      return Errno.ESHUTDOWN;
    default:
      return Errno.EIO;
  }
}

/** Errors a caller caused or expects (not worth a stack trace in the log). */
export function isExpected(err: unknown): boolean {
  return isFastblockError(err) && err.code !== ErrorCode.INTERNAL;
}
