/**
 * The plugin manifest: what a plugin declares about itself, and the one call that turns it into
 * a running part of the daemon.
 *
 * A manifest is a constant (the default export of a plugin's plugin.ts, or of an npm package).
 * It holds no state. `register()` is called once per daemon and returns the plugin's instance;
 * the instance owns whatever the plugin keeps (sockets, threads, files) and is what the kernel
 * starts and stops. Several daemons in one process (tests) therefore never share plugin state.
 *
 *   register  in dependency order; bind what the plugin provides into the container. No I/O.
 *   start     in dependency order, each within daemon.startTimeoutMs. If start() throws it
 *             must leave nothing behind: the kernel stops only the plugins already started.
 *   stop      in reverse order, each within daemon.stopTimeoutMs; called once, only after a
 *             successful start().
 *
 * Loading (built-in short names, npm package names, paths) lives in plugin-loader.ts; ordering,
 * start, stop and rollback in plugin-lifecycle.ts.
 */
import type { Logger } from 'pino';
import type { Schema } from 'convict';
import type { ContractName, DependencyContainer } from './container.js';

export type PluginKind = 'transport' | 'store' | 'frontend' | 'policy' | 'service' | 'extension';

/** What register() returns: the plugin's running state. Both hooks are optional. */
export interface PluginInstance {
  start?(): Promise<void> | void;
  stop?(): Promise<void> | void;
}

/** What the kernel hands a plugin besides the container and its own config section. */
export interface PluginContext {
  /** A child of the daemon's logger bound to { plugin: name }. */
  readonly logger: Logger;
  /** The kernel's version (package.json of fastblock). */
  readonly kernelVersion: string;
  /** The whole effective configuration, for plugins that read another section (rarely right). */
  readonly config: Readonly<Record<string, unknown>>;
}

/** A plain-object config section, as convict validated it. */
export type PluginConfig = object;

export interface PluginManifest<C extends PluginConfig = PluginConfig> {
  /** Unique within a daemon; also the name of the plugin's config section and its log field. */
  readonly name: string;
  readonly kind: PluginKind;
  /** The plugin's own version (semver). */
  readonly version: string;
  /** One line, shown by `fastblockd --help` and `fastblock status`. */
  readonly description?: string;
  /** A semver range the kernel's version must satisfy, e.g. ">=0.1 <1". Absent: any. */
  readonly kernel?: string;
  /** Contracts this plugin binds into the container (TOKENS[name]). */
  readonly provides?: readonly ContractName[];
  /** Contracts another loaded plugin (or the kernel) must provide; they start first. */
  readonly requires?: readonly ContractName[];
  /** The plugin's config section (convict schema), found under the key `name`. */
  readonly configSchema?: Schema<C>;
  register(container: DependencyContainer, config: C, context: PluginContext): PluginInstance | void | Promise<PluginInstance | void>;
}

/** Identity function that lets TypeScript infer C from configSchema. */
export function definePlugin<C extends PluginConfig>(manifest: PluginManifest<C>): PluginManifest<C> {
  return manifest;
}

/** Contracts the kernel itself provides to every plugin. */
export const KERNEL_CONTRACTS: readonly ContractName[] = ['Config', 'Logger', 'RpcServer', 'AdminCommands', 'Metrics'];

export interface BuiltinPlugin {
  readonly name: string;
  /** Folder of the plugin relative to the package root; its manifest is plugin.ts (plugin.js built). */
  readonly folder: string;
  readonly summary: string;
}

/** The built-in short names (fixed convention; see README). */
export const BUILTIN_PLUGINS: readonly BuiltinPlugin[] = [
  { name: 'tcp', folder: 'plugins/transport-tcp', summary: 'Transport over TCP sockets (TCP_NODELAY, batched writes, reconnect)' },
  { name: 'rdma', folder: 'plugins/transport-rdma', summary: 'Transport over RDMA verbs: not built yet; refuses to start, saying why' },
  { name: 'blobstore', folder: 'plugins/store-blobstore', summary: 'StoreFactory on a file or block device: blobstore, disk_log, object_store, kv_store' },
  { name: 'placement', folder: 'plugins/placement', summary: 'Placement and leader policies as sandboxed WebAssembly' },
  { name: 'nbd', folder: 'plugins/frontend-nbd', summary: 'Frontend: export images over NBD (newstyle)' },
  { name: 'vhost', folder: 'plugins/frontend-vhost', summary: 'Frontend: vhost-user-blk backend for QEMU virtual machines' },
  { name: 'nvmf', folder: 'plugins/frontend-nvmf', summary: 'Frontend: NVMe over TCP target' },
  { name: 'monitor', folder: 'services/monitor', summary: 'Monitor: the cluster map (OSDs, pools, PGs, images) in etcd or a local file' },
  { name: 'client', folder: 'client', summary: 'Client library as the BlockVolumeProvider that frontends serve images from (a gateway)' },
  { name: 'osd', folder: 'services/osd', summary: 'OSD: stores PG replicas, raft per PG, one worker thread per shard (needs a StoreFactory)' },
];
