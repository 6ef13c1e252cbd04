/**
 * Frontend: exports BlockVolumes to hosts over a protocol (NBD, vhost-user-blk, NVMe/TCP).
 * A frontend plugin registers one under FRONTEND_TOKENS and serves exports from its start() on.
 */

export interface ExportSpec {
  /** The volume to export, "pool/image". */
  readonly volume: string;
  /** Protocol-specific options: a socket path and queue count (vhost), an NQN (nvmf), ... */
  readonly options?: Readonly<Record<string, string | number | boolean>>;
}

export interface ExportInfo {
  readonly id: string;
  readonly protocol: string;
  readonly volume: string;
  /** How a host reaches it: an nbd:// URI, a socket path, "traddr:trsvcid nqn". */
  readonly location: string;
  readonly clients: number;
  /** Protocol-specific state for listings (a vhost controller's cache mode and write-back figures). */
  readonly details?: Readonly<Record<string, string | number | boolean>>;
}

export interface Frontend {
  /** "nbd", "vhost-user-blk", "nvme-tcp". */
  readonly protocol: string;
  createExport(spec: ExportSpec): Promise<ExportInfo>;
  removeExport(id: string): Promise<void>;
  listExports(): ExportInfo[];
}
