/** "host:port" <-> NetAddress, for config values and CLI flags. IPv6 hosts are written [::1]:port. */
import type { NetAddress } from './contracts/transport.js';
import { ErrorCode, FastblockError } from './errors.js';

const FORM = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

/** Undefined when `text` is not HOST:PORT with a port in 0..65535. */
export function tryParseAddress(text: string): NetAddress | undefined {
  const match = FORM.exec(text);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  return { host: match[1] ?? match[2]!, port };
}

export function parseAddress(text: string, what = 'address'): NetAddress {
  const address = tryParseAddress(text);
  if (!address) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${what} ${JSON.stringify(text)} is not HOST:PORT (e.g. 127.0.0.1:7700)`, { value: text });
  return address;
}

export function formatAddress(address: NetAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
