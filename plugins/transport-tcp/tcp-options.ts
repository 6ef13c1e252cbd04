/**
 * The TCP transport's settings: the `tcp` config section, and the options of createTransport()
 * (plain data, so a worker thread receives them by structured clone).
 */
import type { Schema } from 'convict';

export interface TcpOptions {
  /** Who we are, in the hello we send ("osd.3", a hostname). */
  readonly source: string;
  /** Default per-request timeout. */
  readonly requestTimeoutMs: number;
  /** Longest a connect plus hello may take before it counts as failed. */
  readonly connectTimeoutMs: number;
  /** First reconnect delay; doubles per failed attempt up to backoffMaxMs (with jitter). */
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  readonly maxHeaderBytes: number;
  /** Largest payload a frame may carry; a bigger one closes the connection. */
  readonly maxPayloadBytes: number;
  /** Above this many queued outbound bytes drained() waits and a server stops reading requests. */
  readonly highWaterBytes: number;
  /** Hard bound on queued outbound bytes per connection; past it requests fail with BUSY. */
  readonly maxBufferedBytes: number;
  /** Requests a server runs at once per connection before it stops reading that connection. */
  readonly maxInflightPerConnection: number;
  /** CRC-32 over payloads too (preamble and header are always checksummed). */
  readonly checksumPayload: boolean;
}

export const tcpConfigSchema: Schema<Omit<TcpOptions, 'source'>> = {
  requestTimeoutMs: { doc: 'Default per-request timeout (ms)', format: 'nat', default: 30_000 },
  connectTimeoutMs: { doc: 'Connect + hello time limit (ms)', format: 'nat', default: 5_000 },
  backoffMinMs: { doc: 'First reconnect delay (ms)', format: 'nat', default: 50 },
  backoffMaxMs: { doc: 'Largest reconnect delay (ms)', format: 'nat', default: 5_000 },
  maxHeaderBytes: { doc: 'Largest frame header accepted (bytes)', format: 'nat', default: 64 * 1024 },
  maxPayloadBytes: { doc: 'Largest frame payload accepted (bytes)', format: 'nat', default: 64 * 1024 * 1024 },
  highWaterBytes: { doc: 'Queued bytes above which senders wait and servers stop reading', format: 'nat', default: 4 * 1024 * 1024 },
  maxBufferedBytes: { doc: 'Queued bytes per connection above which requests fail with BUSY', format: 'nat', default: 160 * 1024 * 1024 },
  maxInflightPerConnection: { doc: 'Requests served at once per inbound connection', format: 'nat', default: 1024 },
  checksumPayload: { doc: 'Checksum payloads as well as headers', format: Boolean, default: true },
};

export const DEFAULT_TCP_OPTIONS: TcpOptions = {
  source: 'fastblock',
  requestTimeoutMs: 30_000,
  connectTimeoutMs: 5_000,
  backoffMinMs: 50,
  backoffMaxMs: 5_000,
  maxHeaderBytes: 64 * 1024,
  maxPayloadBytes: 64 * 1024 * 1024,
  highWaterBytes: 4 * 1024 * 1024,
  maxBufferedBytes: 160 * 1024 * 1024,
  maxInflightPerConnection: 1024,
  checksumPayload: true,
};
