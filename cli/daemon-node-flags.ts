/**
 * Node flags every fastblockd runs with. V8 reads heap sizes once, as the process starts, so they
 * belong on the daemon's command line: the shebang of bin/fastblockd.js, the spawn of every daemon
 * by vstart (and so the cluster tests), and the processes of a benchmark that stand in for daemons.
 *
 * --initial-old-space-size=128: a daemon's live heap is small (~10 MB) while it allocates a few
 * KB per request and pins receive buffers for the requests in flight; V8 sizes the old
 * generation's first limits from that small heap and keeps starting incremental marking, tens of
 * mark-compacts a second under load. The flag only moves where the first limits lie (nothing is
 * reserved; pages are taken as the heap grows), at the price of up to 128 MB of garbage held per
 * heap (the daemon and each shard worker) before the first full collection. Measured on the RPC
 * client (callgrind, user-space instructions per round trip): 128 KiB 662k -> 437k, 4 KiB 87k -> 80k.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];
