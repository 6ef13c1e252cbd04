/**
 * The `nbd` section of the configuration: a convict schema (validated by the kernel's config
 * loader, which also derives FASTBLOCK_NBD_* environment names) and the typed settings the
 * frontend runs with.
 */
import type { Schema } from 'convict';
export interface NbdConfig {
  /** Address to listen on; 127.0.0.1 unless the gateway is meant to be reached from elsewhere. */
  readonly host: string;
  /** TCP port; 0 picks a free one (read it back from the frontend). */
  readonly port: number;
  /** Volumes exported from start, "pool/image" or "pool/image:ro" for a read-only export. */
  readonly exports: readonly string[];
  /** Also serve any volume the block provider can open, by its name, without createExport(). */
  readonly dynamicExports: boolean;
  /** Export a client gets when it asks for the empty (default) name. */
  readonly defaultExport: string;
  readonly maxConnections: number;
  /** Requests in flight per connection before the server stops reading that socket. */
  readonly maxInFlight: number;
  /** Largest READ/WRITE payload (bytes); advertised as the maximum block size. */
  readonly maxPayload: number;
  /** Payload bytes in flight over all connections; past it no connection reads new requests. */
  readonly maxInFlightBytes: number;
  /** A client that has not finished negotiating by then is disconnected. */
  readonly handshakeTimeoutMs: number;
}

const MIB = 1024 * 1024;

export const nbdConfigSchema: Schema<NbdConfig> = {
  host: { doc: 'NBD listen address', format: String, default: '127.0.0.1' },
  port: { doc: 'NBD listen port (0: any free port)', format: 'port', default: 10809 },
  exports: { doc: 'volumes exported at start: "pool/image" or "pool/image:ro"', format: Array, default: [] },
  dynamicExports: { doc: 'serve any volume the block provider can open', format: Boolean, default: true },
  defaultExport: { doc: 'volume served for the empty export name ("" for none)', format: String, default: '' },
  maxConnections: { doc: 'simultaneous client connections', format: 'nat', default: 1024 },
  maxInFlight: { doc: 'requests in flight per connection', format: 'nat', default: 256 },
  maxPayload: { doc: 'largest read/write payload in bytes', format: 'nat', default: 32 * MIB },
  maxInFlightBytes: { doc: 'payload bytes in flight over all connections', format: 'nat', default: 1024 * MIB },
  handshakeTimeoutMs: { doc: 'time allowed for negotiation (ms)', format: 'nat', default: 10_000 },
};

/** The schema's defaults, for embedding the frontend without the config loader (tests, tools). */
export const NBD_CONFIG_DEFAULTS: NbdConfig = {
  host: '127.0.0.1',
  port: 10809,
  exports: [],
  dynamicExports: true,
  defaultExport: '',
  maxConnections: 1024,
  maxInFlight: 256,
  maxPayload: 32 * MIB,
  maxInFlightBytes: 1024 * MIB,
  handshakeTimeoutMs: 10_000,
};

/** "pool/image:ro" -> name and options. */
export function parseExportEntry(entry: string): { volume: string; readOnly: boolean } {
  const readOnly = entry.endsWith(':ro');
  return { volume: readOnly ? entry.slice(0, -3) : entry, readOnly };
}
