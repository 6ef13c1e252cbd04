/** What a subsystem's namespaces served, for the SMART / Health log. */
export class IoCounters {
  readCommands = 0;
  writeCommands = 0;
  bytesRead = 0;
  bytesWritten = 0;
  mediaErrors = 0;
  readonly startedAt = Date.now();

  /** SMART "data units": thousands of 512-byte units, rounded up. */
  static dataUnits(bytes: number): number {
    return Math.ceil(bytes / 512 / 1000);
  }
}
