/**
 * A controller: one host association with a subsystem, created by an admin-queue Connect and gone
 * when that queue's connection closes, the keep-alive timer expires, or the target removes the
 * subsystem. It holds the properties (CC, CSTS), the features a host set, its I/O queues, the
 * outstanding Asynchronous Event Requests and the error log.
 */
import type { Logger } from 'pino';
import { assert } from '../../../kernel/errors.js';
import type { Completion } from '../nvme/command.js';
import { CHANGED_NAMESPACE_LIST_ENTRIES, changedNamespaceList, type ErrorEntry } from '../nvme/log-pages.js';
import { CC, CSTS, CommandSetSelect, Property, ShutdownStatus, NVME_VERSION, capability } from '../nvme/registers.js';
import { CommandSpecificStatus, GenericStatus, NvmeStatusError, SUCCESS, commandSpecific, generic } from '../nvme/status.js';
import type { DiscoverySubsystem } from '../subsystem/discovery-subsystem.js';
import type { NvmSubsystem } from '../subsystem/nvm-subsystem.js';
import { ASYNC_EVENT_LIMIT, ERROR_LOG_ENTRIES, type ControllerLimits } from './limits.js';

/** What a controller needs of a queue it owns: its id, and a way to end it. */
export interface QueueLink {
  readonly qid: number;
  close(reason: string): void;
}

/** Async Event Configuration bit for discovery log page change notices. */
export const AEC_DISCOVERY_LOG_CHANGE = 1 << 31;
/** AEN dword 0: Notice (type 2), Discovery Log Page Change (0xF0), log page 0x70. */
export const AEN_DISCOVERY_LOG_CHANGE = 0x02 | (0xf0 << 8) | (0x70 << 16);
/** Async Event Configuration bit for namespace attribute notices. */
export const AEC_NAMESPACE_ATTRIBUTE = 1 << 8;
/** AEN dword 0: Notice (type 2), Namespace Attribute Changed (0x00), log page 0x04. */
export const AEN_NAMESPACE_ATTRIBUTE_CHANGED = 0x02 | (0x00 << 8) | (0x04 << 16);

const MAX_TIMER_MS = 2 ** 31 - 1;

interface PendingEvent {
  resolve(completion: Completion): void;
}

export class Controller {
  cc = 0;
  csts = 0;
  asyncEventConfig = 0;
  /**
   * Volatile Write Cache feature, WCE (only settable where the subsystem has one): when the host
   * disables it, this controller's writes go FUA, completing once durable in the volume.
   */
  writeCacheEnabled = true;
  /** I/O queues granted by Set Features (Number of Queues), 1-based. */
  grantedIoQueues: number;
  readonly ioQueues = new Map<number, QueueLink>();
  private readonly pendingEventRequests: PendingEvent[] = [];
  private readonly queuedEvents: number[] = [];
  /** Namespaces changed since the host last read the Changed Namespace List. */
  private readonly changedNamespaces = new Set<number>();
  private changedNamespacesOverflow = false;
  /** A namespace notice was reported and the log not read yet: later changes only join the list. */
  private namespaceNoticeMasked = false;
  private readonly errors: ErrorEntry[] = [];
  private errorCount = 0;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private keepAliveMs = 0;
  private destroyed = false;

  constructor(
    readonly cntlid: number,
    readonly subsystem: NvmSubsystem | DiscoverySubsystem,
    readonly hostNqn: string,
    readonly hostId: Uint8Array,
    readonly adminQueue: QueueLink,
    readonly limits: ControllerLimits,
    private readonly logger: Logger,
    private readonly onDestroy: (controller: Controller) => void,
  ) {
    this.grantedIoQueues = limits.maxIoQueues;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  get ready(): boolean {
    return (this.csts & CSTS.RDY) !== 0;
  }

  get keepAliveTimeoutMs(): number {
    return this.keepAliveMs;
  }

  // --- properties -------------------------------------------------------------------------

  getProperty(offset: number, eightBytes: boolean): bigint {
    if (eightBytes) {
      if (offset === Property.CAP) return capability({ maxQueueEntries: this.limits.maxQueueEntries });
    } else {
      switch (offset) {
        case Property.VS:
          return BigInt(NVME_VERSION);
        case Property.CC:
          return BigInt(this.cc);
        case Property.CSTS:
          return BigInt(this.csts);
      }
    }
    throw new NvmeStatusError(generic(GenericStatus.InvalidField), `no ${eightBytes ? 8 : 4}-byte property at 0x${offset.toString(16)}`);
  }

  setProperty(offset: number, eightBytes: boolean, value: bigint): void {
    if (eightBytes || offset !== Property.CC) {
      throw new NvmeStatusError(generic(GenericStatus.InvalidField), `property 0x${offset.toString(16)} is not writable`);
    }
    this.writeCC(Number(value & 0xffffffffn));
  }

  private writeCC(next: number): void {
    const previous = this.cc;
    this.cc = next;
    const wasEnabled = (previous & CC.EN) !== 0;
    const enable = (next & CC.EN) !== 0;
    if (!wasEnabled && enable) {
      this.csts = this.validEnableSettings(next) ? CSTS.RDY : CSTS.CFS;
      if (this.csts === CSTS.CFS) this.logger.warn({ cntlid: this.cntlid, cc: next }, 'host enabled the controller with settings it cannot run');
    } else if (wasEnabled && !enable) {
      this.reset();
    }
    const shn = (next >> CC.shnShift) & 0x3;
    const previousShn = (previous >> CC.shnShift) & 0x3;
    if (shn !== 0 && previousShn === 0) this.shutdown();
  }

  private validEnableSettings(cc: number): boolean {
    const css = (cc >> CC.cssShift) & 0x7;
    const mps = (cc >> CC.mpsShift) & 0xf;
    const iosqes = (cc >> CC.iosqesShift) & 0xf;
    const iocqes = (cc >> CC.iocqesShift) & 0xf;
    const cssOk = css === CommandSetSelect.Nvm || css === CommandSetSelect.AllSupported || css === CommandSetSelect.AdminOnly;
    if (this.subsystem.kind === 'discovery') return cssOk && mps === 0;
    return cssOk && mps === 0 && iosqes === 6 && iocqes === 4;
  }

  /** CC.EN 1 -> 0: the I/O queues go away, outstanding event requests are aborted. */
  private reset(): void {
    this.csts &= ~(CSTS.RDY | CSTS.CFS);
    for (const queue of [...this.ioQueues.values()]) queue.close('controller reset');
    this.ioQueues.clear();
    this.abortEventRequests();
  }

  /** Shutdown: report "occurring" until every namespace's volume has flushed, then "complete". */
  private shutdown(): void {
    this.csts = (this.csts & ~(0x3 << CSTS.shstShift)) | (ShutdownStatus.Occurring << CSTS.shstShift);
    const flushes = this.subsystem.kind === 'nvm' ? [...this.subsystem.namespaces.values()].map((ns) => ns.volume.flush()) : [];
    void Promise.allSettled(flushes).then(() => {
      this.csts = (this.csts & ~(0x3 << CSTS.shstShift)) | (ShutdownStatus.Complete << CSTS.shstShift);
    });
  }

  // --- keep alive -------------------------------------------------------------------------

  /** KATO in ms; 0 disables the timer. */
  setKeepAliveTimeout(ms: number): void {
    this.keepAliveMs = ms;
    clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
    if (ms === 0 || this.destroyed) return;
    // KAS is 1 s: the timeout counts in whole seconds, plus the target's grace. Node timers stop at
    // 2^31-1 ms (24.8 days); a longer KATO waits that long.
    const limit = Math.min(Math.ceil(ms / 1000) * 1000 + this.limits.keepAliveGraceMs, MAX_TIMER_MS);
    this.keepAliveTimer = setTimeout(() => {
      this.logger.warn({ cntlid: this.cntlid, subnqn: this.subsystem.nqn, hostnqn: this.hostNqn, kato: ms }, 'keep alive timeout: tearing the controller down');
      this.destroy('keep alive timeout');
    }, limit);
    this.keepAliveTimer.unref();
  }

  keepAlive(): void {
    this.keepAliveTimer?.refresh();
  }

  // --- asynchronous events ----------------------------------------------------------------

  /** An Asynchronous Event Request: resolves when an event is reported, or with an abort on reset. */
  requestAsyncEvent(): Promise<Completion> {
    if (this.pendingEventRequests.length >= ASYNC_EVENT_LIMIT) {
      throw new NvmeStatusError(commandSpecific(CommandSpecificStatus.AsyncEventLimitExceeded), 'too many outstanding async event requests');
    }
    const queued = this.queuedEvents.shift();
    if (queued !== undefined) return Promise.resolve({ status: SUCCESS, dw0: queued, dw1: 0 });
    return new Promise((resolve) => this.pendingEventRequests.push({ resolve }));
  }

  /** Reports an event if the host enabled it (`configBit` of Async Event Configuration). */
  notify(dw0: number, configBit: number): void {
    if (this.destroyed || (this.asyncEventConfig & configBit) === 0) return;
    const waiter = this.pendingEventRequests.shift();
    if (waiter) waiter.resolve({ status: SUCCESS, dw0, dw1: 0 });
    else if (!this.queuedEvents.includes(dw0)) this.queuedEvents.push(dw0);
  }

  /** A namespace's attributes changed (its size): listed in log page 0x04 and noticed once. */
  namespaceChanged(nsid: number): void {
    if (this.destroyed) return;
    if (this.changedNamespaces.size >= CHANGED_NAMESPACE_LIST_ENTRIES) this.changedNamespacesOverflow = true;
    else this.changedNamespaces.add(nsid);
    if (this.namespaceNoticeMasked || (this.asyncEventConfig & AEC_NAMESPACE_ATTRIBUTE) === 0) return;
    this.namespaceNoticeMasked = true;
    this.notify(AEN_NAMESPACE_ATTRIBUTE_CHANGED, AEC_NAMESPACE_ATTRIBUTE);
  }

  /**
   * The Changed Namespace List; reading it clears the list and re-arms the notice unless the host
   * asked to retain the event (RAE).
   */
  changedNamespaceLog(retain: boolean): Uint8Array {
    const page = changedNamespaceList(this.changedNamespaces, this.changedNamespacesOverflow);
    if (!retain) {
      this.changedNamespaces.clear();
      this.changedNamespacesOverflow = false;
      this.namespaceNoticeMasked = false;
    }
    return page;
  }

  private abortEventRequests(): void {
    for (const waiter of this.pendingEventRequests.splice(0)) {
      waiter.resolve({ status: generic(GenericStatus.AbortRequested), dw0: 0, dw1: 0 });
    }
  }

  // --- error log --------------------------------------------------------------------------

  recordError(entry: Omit<ErrorEntry, 'count'>): void {
    this.errorCount++;
    this.errors.unshift({ ...entry, count: this.errorCount });
    if (this.errors.length > ERROR_LOG_ENTRIES) this.errors.pop();
  }

  get errorEntries(): readonly ErrorEntry[] {
    return this.errors;
  }

  get errorTotal(): number {
    return this.errorCount;
  }

  // --- queues and life cycle --------------------------------------------------------------

  attachIoQueue(queue: QueueLink): void {
    assert(!this.ioQueues.has(queue.qid), 'I/O queue attached twice');
    this.ioQueues.set(queue.qid, queue);
  }

  detachIoQueue(queue: QueueLink): void {
    if (this.ioQueues.get(queue.qid) === queue) this.ioQueues.delete(queue.qid);
  }

  /** Ends the association: every queue's connection closes; the subsystem and its namespaces stay. */
  destroy(reason: string): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this.keepAliveTimer);
    this.abortEventRequests();
    for (const queue of [...this.ioQueues.values()]) queue.close(reason);
    this.ioQueues.clear();
    this.adminQueue.close(reason);
    this.onDestroy(this);
  }
}
