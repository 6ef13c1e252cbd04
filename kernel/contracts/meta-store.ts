/**
 * MetaStore: where the monitor keeps the cluster map. Implementations: etcd (several monitors,
 * one leader by election) and embedded (one monitor, a local file written atomically).
 * Keys are strings; values are bytes; every key carries a modification revision.
 */

export interface MetaEntry {
  readonly key: string;
  readonly value: Uint8Array;
  /** Store-wide revision of the last change to this key. */
  readonly modRevision: number;
}

export type MetaCompare =
  /** The key's modRevision equals `modRevision` (0 means: the key does not exist). */
  { readonly key: string; readonly modRevision: number };

export type MetaOp =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly type: 'delete'; readonly key: string }
  | { readonly type: 'deletePrefix'; readonly prefix: string };

export interface MetaTxnResult {
  readonly succeeded: boolean;
  /** Store revision after the transaction (unchanged when it failed). */
  readonly revision: number;
}

export type MetaEvent =
  | { readonly type: 'put'; readonly entry: MetaEntry }
  | { readonly type: 'delete'; readonly key: string; readonly modRevision: number };

/** Held while this process is the elected leader; `lost` fires if leadership ends without resign(). */
export interface MetaLeadership {
  readonly isLeader: boolean;
  onLost(listener: () => void): void;
  resign(): Promise<void>;
}

export interface MetaStore {
  /** "etcd" or "embedded". */
  readonly kind: string;
  get(key: string): Promise<MetaEntry | undefined>;
  list(prefix: string): Promise<MetaEntry[]>;
  /** All compares hold -> all ops applied atomically; otherwise nothing changes. */
  txn(compares: readonly MetaCompare[], ops: readonly MetaOp[]): Promise<MetaTxnResult>;
  /** Calls `listener` for every change under prefix after `fromRevision` (exclusive). Returns a stop function. */
  watch(prefix: string, fromRevision: number, listener: (events: readonly MetaEvent[]) => void): () => void;
  /** Blocks until this candidate is leader of `election`. */
  campaign(election: string, candidateId: string): Promise<MetaLeadership>;
  close(): Promise<void>;
}
