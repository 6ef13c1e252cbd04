/** libfastblock: the public surface of the client library (see docs/client.md). */
export { connect, type ConnectOptions } from './connect.js';
export { ClusterClient, type ClientOptions } from './cluster-client.js';
export { Image } from './image.js';
export type { ClusterMapSource } from './map-source.js';
export { StaticMapSource } from './map-source.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from './object-io.js';
export { runBlockBench, type BenchOptions, type BenchResult } from './block-bench.js';
