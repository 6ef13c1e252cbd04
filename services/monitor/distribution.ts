/**
 * Map distribution to subscribers. Each new epoch becomes a delta (map-delta.ts) kept in a short
 * history; a subscriber gets the deltas after the epoch it holds, or the full map when the history
 * no longer reaches back that far. A subscriber must acknowledge what it applied: one that leaves
 * more than `window` pushes unacknowledged is behind, gets nothing more, and its next ack is
 * answered with the full map (cheaper than replaying a backlog it could not keep up with).
 */
import type { ClusterMap } from '../../kernel/contracts/index.js';
import { diffStates, type MapDelta } from './map-delta.js';
import type { MonitorState } from './map-state.js';
import type { MapUpdate } from './protocol.js';

export interface SubscriberSink {
  /** Best effort, in order (the subscriber's connection). */
  push(update: MapUpdate): void;
}

interface Subscriber {
  readonly sink: SubscriberSink;
  readonly name: string;
  /** The epoch the subscriber will hold once it applies everything pushed. */
  sentEpoch: number;
  /** Epochs pushed and not yet acknowledged, oldest first. */
  readonly unacked: number[];
  behind: boolean;
}

export interface DistributionOptions {
  readonly historyEpochs: number;
  readonly window: number;
}

export class MapDistribution {
  private readonly history: MapDelta[] = [];
  private readonly subscribers = new Map<object, Subscriber>();

  constructor(
    private readonly currentMap: () => ClusterMap,
    private readonly options: DistributionOptions = { historyEpochs: 64, window: 16 },
  ) {}

  get count(): number {
    return this.subscribers.size;
  }

  /** Call for every new snapshot (Monitor.onEpoch). */
  publish(before: MonitorState, after: MonitorState): void {
    const delta = diffStates(before, after);
    this.history.push(delta);
    if (this.history.length > this.options.historyEpochs) this.history.shift();
    for (const sub of this.subscribers.values()) this.catchUp(sub);
  }

  /** `key` identifies the subscriber (its connection); subscribing again replaces it. */
  subscribe(key: object, sink: SubscriberSink, name: string, knownEpoch: number): void {
    const sub: Subscriber = { sink, name, sentEpoch: knownEpoch, unacked: [], behind: false };
    this.subscribers.set(key, sub);
    // Epoch 0 is "nothing held": deltas from the empty map would do, but the full map is one message.
    if (knownEpoch === 0) this.sendFull(sub);
    else this.catchUp(sub);
  }

  unsubscribe(key: object): void {
    this.subscribers.delete(key);
  }

  ack(key: object, epoch: number): void {
    const sub = this.subscribers.get(key);
    if (!sub) return;
    while (sub.unacked.length > 0 && sub.unacked[0] <= epoch) sub.unacked.shift();
    if (sub.behind) {
      sub.behind = false;
      this.sendFull(sub);
    } else {
      this.catchUp(sub);
    }
  }

  private sendFull(sub: Subscriber): void {
    const map = this.currentMap();
    sub.sentEpoch = map.epoch;
    sub.unacked.length = 0;
    sub.unacked.push(map.epoch);
    sub.sink.push({ full: map });
  }

  private catchUp(sub: Subscriber): void {
    if (sub.behind) return;
    const current = this.currentMap().epoch;
    if (sub.sentEpoch === current) return;
    const first = this.history.findIndex((d) => d.fromEpoch === sub.sentEpoch);
    if (first < 0 || sub.sentEpoch > current) return this.sendFull(sub);
    for (const delta of this.history.slice(first)) {
      if (sub.unacked.length >= this.options.window) {
        sub.behind = true;
        return;
      }
      sub.sink.push({ delta });
      sub.sentEpoch = delta.epoch;
      sub.unacked.push(delta.epoch);
    }
  }
}
