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
 * A writeback export's handle is ONE WriteBackVolume over the provider's volume, opened with the
 * entry and shared by all its connections the same way, so the flag still holds: a write is
 * acknowledged once it is a record of that one log; its flush() waits for the write-back of every
 * record appended before it was called (whichever connection appended it), then flushes the
 * volume; a FUA write waits for its own record's write-back; and reads through it see every
 * acknowledged write (from the log's memory, or from the volume once written back). Two handles,
 * one per connection, could not exist anyway: the log's lock allows one opener per image.
 *
 * Exports come from createExport() (pinned: open until removed) and, when `dynamic` is set, from
 * any name the provider can open (opened on first use, closed when the last connection leaves).
 * An entry's cache mode is fixed while it is open. Closing a writeback entry drains its log into
 * the volume; an entry opened again meanwhile waits for that close, whose log and lock it needs.
 */
import type { Logger } from 'pino';
import type { BlockVolume, BlockVolumeProvider } from '../../kernel/contracts/block.js';
import type { WriteBackVolume } from '../../kernel/block/write-back-volume.js';
import { ErrorCode, FastblockError, assert } from '../../kernel/errors.js';
import type { CacheMode } from './config.js';
import { meterAtOuter } from '../../kernel/metrics/metered-volumes.js';
import { openExportWriteBack, writeBackDetails, writeBackLeftover, type WriteBackSettings } from '../../kernel/block/export-cache.js';

export interface ExportOptions {
  readonly readOnly: boolean;
  /** The mode the export is served in: a read-only export is always writethrough (nothing to cache). */
  readonly cache: CacheMode;
}

export interface OpenExport {
  readonly name: string;
  readonly volume: BlockVolume;
  readonly options: ExportOptions;
}

export interface ExportTableSettings {
  /** Serve any volume the provider can open (nbd.dynamicExports). */
  readonly dynamic: boolean;
  /** Mode of the exports a client opens dynamically (nbd.cache). */
  readonly cache: CacheMode;
  readonly writeBack: WriteBackSettings;
}

interface Opened {
  readonly volume: BlockVolume;
  readonly writeBack: WriteBackVolume | undefined;
}

interface Entry {
  readonly name: string;
  /** The mode its volume is opened in, for the entry's whole life. */
  readonly cache: CacheMode;
  readonly opening: Promise<Opened>;
  /** Set once open, for listings (which are synchronous). */
  writeBack: WriteBackVolume | undefined;
  options: ExportOptions;
  pinned: boolean;
  users: number;
}

/** A read-only export never uses the write-back cache. */
export function servedCache(readOnly: boolean, cache: CacheMode): CacheMode {
  return readOnly ? 'writethrough' : cache;
}

export class ExportTable {
  private readonly entries = new Map<string, Entry>();
  /** Closes in progress, by name: a new entry of the name opens after it (a drain may take long). */
  private readonly closing = new Map<string, Promise<void>>();
  private readonly dynamic: boolean;

  constructor(
    private readonly provider: BlockVolumeProvider,
    private readonly settings: ExportTableSettings,
    private readonly log: Logger,
  ) {
    this.dynamic = settings.dynamic;
  }

  /**
   * Pins an export (createExport); opens its volume now so a bad name fails here. An export already
   * open (pinned, or dynamic with clients) is pinned as it is if its cache mode is the one asked
   * for, and refused (BUSY) otherwise: its volume cannot change mode under its clients.
   */
  async pin(name: string, requested: ExportOptions): Promise<OpenExport> {
    const options: ExportOptions = { readOnly: requested.readOnly, cache: servedCache(requested.readOnly, requested.cache) };
    const existing = this.entries.get(name);
    if (existing !== undefined && existing.cache !== options.cache) {
      throw new FastblockError(
        ErrorCode.BUSY,
        `export ${name} is open ${existing.cache} (${existing.pinned ? 'created, ' : ''}${existing.users} client(s)); ` +
          `remove it and let its clients leave before serving it ${options.cache}`,
        { name, cache: existing.cache, requested: options.cache, clients: existing.users },
      );
    }
    const entry = existing ?? this.open(name, options);
    const wasPinned = entry.pinned;
    entry.pinned = true;
    entry.options = options;
    try {
      return { name, volume: (await entry.opening).volume, options };
    } catch (err) {
      entry.pinned = wasPinned;
      if (this.entries.get(name) === entry && entry.users === 0 && !entry.pinned) this.entries.delete(name);
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
    entry ??= this.open(name, { readOnly: false, cache: this.settings.cache });
    entry.users++;
    try {
      return { name, volume: (await entry.opening).volume, options: entry.options };
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

  /** The mode an open export is served in, and its write-back figures when writeback (and open). */
  describe(name: string): { cache: CacheMode; readOnly: boolean; writeBack: Record<string, number> | undefined } | undefined {
    const entry = this.entries.get(name);
    if (entry === undefined) return undefined;
    return { cache: entry.cache, readOnly: entry.options.readOnly, writeBack: entry.writeBack === undefined ? undefined : writeBackDetails(entry.writeBack) };
  }

  /** What OPT_LIST shows: pinned exports, and with `dynamic` every volume the provider knows. */
  async names(): Promise<string[]> {
    const names = new Set(this.pinnedNames());
    if (this.dynamic) for (const name of await this.provider.list()) names.add(name);
    return [...names].sort();
  }

  /** Closes every export, and waits for closes already under way (drains of logs included). */
  async closeAll(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    const earlier = [...this.closing.values()];
    await Promise.all([...entries.map((e) => this.close(e)), ...earlier]);
  }

  private open(name: string, options: ExportOptions): Entry {
    const closing = this.closing.get(name);
    const opening = closing === undefined ? this.openVolume(name, options.cache) : closing.then(() => this.openVolume(name, options.cache));
    const entry: Entry = { name, cache: options.cache, opening, writeBack: undefined, options, pinned: false, users: 0 };
    opening.then(
      (opened) => (entry.writeBack = opened.writeBack),
      // A failed open is reported to whoever awaits it; this keeps it from also being "unhandled".
      () => undefined,
    );
    this.entries.set(name, entry);
    return entry;
  }

  /**
   * The provider's volume, behind a WriteBackVolume when writeback. A writethrough one first writes
   * back a log an earlier process left for it. A failure closes what was opened.
   */
  private async openVolume(name: string, cache: CacheMode): Promise<Opened> {
    const inner = await this.provider.open(name);
    const log = this.log.child({ volume: name });
    try {
      if (cache === 'writeback') {
        const writeBack = openExportWriteBack(name, inner, this.settings.writeBack, log);
        // The clients' I/O is what the export's metrics count, not what gets past the caches.
        return { volume: meterAtOuter(inner, writeBack), writeBack };
      }
      await writeBackLeftover(name, inner, this.settings.writeBack, log);
      return { volume: inner, writeBack: undefined };
    } catch (err) {
      await inner.close().catch((closeErr: unknown) => log.warn({ err: closeErr }, 'closing a volume failed'));
      throw err;
    }
  }

  private async closeIfUnused(entry: Entry): Promise<void> {
    if (entry.users > 0 || entry.pinned || this.entries.get(entry.name) !== entry) return;
    this.entries.delete(entry.name);
    await this.close(entry);
  }

  /**
   * Never throws: nobody waits on a close to go on, so a failure is the log's to report. A writeback
   * volume drains its log into the volume first (waiting for the volume as long as it takes) and
   * removes it; an open of the same name meanwhile waits for that.
   */
  private close(entry: Entry): Promise<void> {
    // The entry's own open waited for any earlier close of its name, so this one ends after those.
    const done: Promise<void> = this.closeVolume(entry).then(() => {
      if (this.closing.get(entry.name) === done) this.closing.delete(entry.name);
    });
    this.closing.set(entry.name, done);
    return done;
  }

  private async closeVolume(entry: Entry): Promise<void> {
    try {
      await (await entry.opening).volume.close();
    } catch (err) {
      this.log.warn({ err, volume: entry.name }, 'closing a volume failed');
    }
  }
}
