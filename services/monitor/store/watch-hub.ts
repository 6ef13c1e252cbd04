/**
 * In-process watches for a store that is the only writer of its data (the embedded store): every
 * committed transaction is published to the watchers whose prefix it touches. A short history lets
 * a watch start a little in the past, as etcd's does.
 */
import type { MetaEvent } from '../../../kernel/contracts/index.js';

interface Watcher {
  readonly prefix: string;
  readonly listener: (events: readonly MetaEvent[]) => void;
}

const HISTORY_REVISIONS = 1024;

function keyOf(event: MetaEvent): string {
  return event.type === 'put' ? event.entry.key : event.key;
}

export class WatchHub {
  private readonly watchers = new Set<Watcher>();
  private readonly history: { revision: number; events: readonly MetaEvent[] }[] = [];

  publish(revision: number, events: readonly MetaEvent[]): void {
    if (events.length === 0) return;
    this.history.push({ revision, events });
    if (this.history.length > HISTORY_REVISIONS) this.history.shift();
    for (const watcher of this.watchers) this.deliver(watcher, events);
  }

  watch(prefix: string, fromRevision: number, listener: (events: readonly MetaEvent[]) => void): () => void {
    const watcher = { prefix, listener };
    for (const past of this.history) if (past.revision > fromRevision) this.deliver(watcher, past.events);
    this.watchers.add(watcher);
    return () => void this.watchers.delete(watcher);
  }

  private deliver(watcher: Watcher, events: readonly MetaEvent[]): void {
    const mine = events.filter((e) => keyOf(e).startsWith(watcher.prefix));
    if (mine.length > 0) watcher.listener(mine);
  }
}
