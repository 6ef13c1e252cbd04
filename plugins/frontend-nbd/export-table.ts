/**
 * The volumes this server exports, by NBD export name ("pool/image").
 *
 * Every connection to an export shares ONE BlockVolume handle. That is what makes
 * NBD_FLAG_CAN_MULTI_CONN honest: the BlockVolume contract says flush() makes durable every write
 * resolved before it was called, and since a write is replied only after it resolved, a FLUSH on
 * any connection covers every write any connection saw acknowledged; reads on one handle see every
 * resolved write, so FUA effects are visible everywhere too. (Per-connection handles would make
 * that depend on how a provider scopes flush(), which the contract does not say.)
 *
 * Exports come from createExport() (pinned: open until removed) and, when `dynamic` is set, from
 * any name the provider can open (opened on first use, closed when the last connection leaves).
 */
import type { Logger } from 'pino';
import type { BlockVolume, BlockVolumeProvider } from '../../kernel/contracts/block.js';
import { ErrorCode, FastblockError, assert } from '../../kernel/errors.js';

export interface ExportOptions {
  readonly readOnly: boolean;
}

export interface OpenExport {
  readonly name: string;
  readonly volume: BlockVolume;
  readonly options: ExportOptions;
}

interface Entry {
  readonly name: string;
  readonly opening: Promise<BlockVolume>;
  options: ExportOptions;
  pinned: boolean;
  users: number;
}

export class ExportTable {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly provider: BlockVolumeProvider,
    private readonly dynamic: boolean,
    private readonly log: Logger,
  ) {}

  /** Pins an export (createExport); opens its volume now so a bad name fails here. */
  async pin(name: string, options: ExportOptions): Promise<OpenExport> {
    const entry = this.entries.get(name) ?? this.open(name, options);
    entry.pinned = true;
    entry.options = options;
    try {
      return { name, volume: await entry.opening, options };
    } catch (err) {
      this.entries.delete(name);
      throw err;
    }
  }

  async unpin(name: string): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry?.pinned) throw new FastblockError(ErrorCode.NOT_FOUND, `no export named ${name}`, { name });
    entry.pinned = false;
    await this.closeIfUnused(entry);
  }

  /** The export a connection will use; every acquire() is matched by one release(). */
  async acquire(name: string): Promise<OpenExport> {
    let entry = this.entries.get(name);
    // An entry that is neither pinned nor dynamic was removed and stays only for its last users.
    if (!this.dynamic && !entry?.pinned) throw new FastblockError(ErrorCode.NOT_FOUND, `no export named ${name}`, { name });
    entry ??= this.open(name, { readOnly: false });
    entry.users++;
    try {
      return { name, volume: await entry.opening, options: entry.options };
    } catch (err) {
      entry.users--;
      if (this.entries.get(name) === entry && entry.users === 0 && !entry.pinned) this.entries.delete(name);
      throw err;
    }
  }

  async release(name: string): Promise<void> {
    const entry = this.entries.get(name);
    assert(entry !== undefined && entry.users > 0, `release of an export not acquired: ${name}`);
    entry.users--;
    await this.closeIfUnused(entry);
  }

  users(name: string): number {
    return this.entries.get(name)?.users ?? 0;
  }

  pinnedNames(): string[] {
    return [...this.entries.values()].filter((e) => e.pinned).map((e) => e.name);
  }

  /** What OPT_LIST shows: pinned exports, and with `dynamic` every volume the provider knows. */
  async names(): Promise<string[]> {
    const names = new Set(this.pinnedNames());
    if (this.dynamic) for (const name of await this.provider.list()) names.add(name);
    return [...names].sort();
  }

  async closeAll(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(entries.map((e) => this.close(e)));
  }

  private open(name: string, options: ExportOptions): Entry {
    const entry: Entry = { name, opening: this.provider.open(name), options, pinned: false, users: 0 };
    // A failed open is reported to whoever awaits it; this keeps it from also being "unhandled".
    entry.opening.catch(() => undefined);
    this.entries.set(name, entry);
    return entry;
  }

  private async closeIfUnused(entry: Entry): Promise<void> {
    if (entry.users > 0 || entry.pinned || this.entries.get(entry.name) !== entry) return;
    this.entries.delete(entry.name);
    await this.close(entry);
  }

  /** Never throws: nobody waits on a close to go on, so a failure is the log's to report. */
  private async close(entry: Entry): Promise<void> {
    try {
      await (await entry.opening).close();
    } catch (err) {
      this.log.warn({ err, volume: entry.name }, 'closing a volume failed');
    }
  }
}
