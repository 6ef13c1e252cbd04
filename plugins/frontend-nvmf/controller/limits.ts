/** What every controller of one target advertises and enforces. */
export interface ControllerLimits {
  /** I/O queues a host may create per controller. */
  readonly maxIoQueues: number;
  /** Entries per submission queue (CAP.MQES + 1). */
  readonly maxQueueEntries: number;
  /** Largest data transfer of one command, bytes (a power of two, at least 4 KiB). */
  readonly maxTransferBytes: number;
  /** In-capsule data a CapsuleCmd may carry, bytes. */
  readonly inCapsuleDataSize: number;
  /** MAXH2CDATA: the largest H2CData PDU payload. */
  readonly maxH2CData: number;
  /** Extra time past KATO before an idle association is torn down, ms. */
  readonly keepAliveGraceMs: number;
  readonly model: string;
  readonly firmware: string;
}

/** Outstanding Asynchronous Event Requests per controller (AERL + 1). */
export const ASYNC_EVENT_LIMIT = 4;
/** Error log entries kept per controller (ELPE + 1). */
export const ERROR_LOG_ENTRIES = 64;
