/**
 * NVM I/O commands onto the namespace's BlockVolume: Read, Write, Flush, Write Zeroes and Dataset
 * Management (deallocate). Every range is checked against the namespace before any data is solicited.
 */
import { ErrorCode, isFastblockError } from '../../../kernel/errors.js';
import { IoOpcode } from '../nvme/opcodes.js';
import { GenericStatus, NvmeStatusError, StatusCodeType, fail, generic, status } from '../nvme/status.js';
import type { Namespace } from '../subsystem/namespace.js';
import type { NvmSubsystem } from '../subsystem/nvm-subsystem.js';
import type { CommandContext, CommandResult } from './command-context.js';
import { ok } from './command-context.js';

const FLUSH_ALL_NAMESPACES = 0xffffffff;
const DSM_RANGE_LENGTH = 16;
const MediaStatus = { WriteFault: 0x80, UnrecoveredReadError: 0x81 } as const;

/**
 * `writeCacheEnabled`: the controller's Volatile Write Cache feature (WCE); when off, writes go with
 * FUA. Flush calls the volume's flush() (a writeback export's waits for every write acknowledged
 * before it, from any queue of the subsystem: they share one WriteBackVolume). FUA (CDW12 bit 30) is
 * passed to the volume: a writeback export's write then completes once it is written back.
 */
export async function executeIo(subsystem: NvmSubsystem, ctx: CommandContext, writeCacheEnabled = true): Promise<CommandResult> {
  const opcode = ctx.sqe.opcode;
  if (opcode === IoOpcode.Flush && ctx.sqe.nsid === FLUSH_ALL_NAMESPACES) {
    await volumeCall(Promise.all([...subsystem.namespaces.values()].map((ns) => ns.volume.flush())), false);
    return ok();
  }
  const ns = subsystem.namespaces.get(ctx.sqe.nsid);
  if (!ns) fail(GenericStatus.InvalidNamespaceOrFormat, `no namespace ${ctx.sqe.nsid}`);
  switch (opcode) {
    case IoOpcode.Read:
      return read(subsystem, ns, ctx);
    case IoOpcode.Write:
      return write(subsystem, ns, ctx, !writeCacheEnabled);
    case IoOpcode.Flush:
      await volumeCall(ns.volume.flush(), false);
      return ok();
    case IoOpcode.WriteZeroes:
      return writeZeroes(ns, ctx, !writeCacheEnabled);
    case IoOpcode.DatasetManagement:
      return datasetManagement(ns, ctx);
    default:
      fail(GenericStatus.InvalidOpcode, `I/O opcode 0x${opcode.toString(16)} is not supported`);
  }
}

interface BlockRange {
  readonly offset: number;
  readonly length: number;
}

/** SLBA (CDW10-11) and NLB (CDW12 15:0, 0's based) as a byte range inside the namespace. */
function blockRange(ns: Namespace, ctx: CommandContext): BlockRange {
  const slba = ctx.sqe.cdw(11) * 0x100000000 + ctx.sqe.cdw(10);
  const nlb = (ctx.sqe.cdw(12) & 0xffff) + 1;
  return checkedRange(ns, slba, nlb);
}

function checkedRange(ns: Namespace, slba: number, nlb: number): BlockRange {
  if (slba + nlb > ns.blocks) {
    throw new NvmeStatusError(generic(GenericStatus.LbaOutOfRange), `LBA range ${slba}+${nlb} beyond ${ns.blocks} blocks`);
  }
  return { offset: slba * ns.blockSize, length: nlb * ns.blockSize };
}

function forceUnitAccess(ctx: CommandContext): boolean {
  return (ctx.sqe.cdw(12) & (1 << 30)) !== 0;
}

function checkTransfer(range: BlockRange, ctx: CommandContext): void {
  if (ctx.transferLength !== range.length) {
    fail(GenericStatus.DataSglLengthInvalid, `SGL length ${ctx.transferLength} does not match ${range.length} bytes of blocks`);
  }
}

async function read(subsystem: NvmSubsystem, ns: Namespace, ctx: CommandContext): Promise<CommandResult> {
  const range = blockRange(ns, ctx);
  checkTransfer(range, ctx);
  const data = await volumeCall(ns.volume.read(range.offset, range.length), true, subsystem);
  subsystem.counters.readCommands++;
  subsystem.counters.bytesRead += range.length;
  return ok(data);
}

async function write(subsystem: NvmSubsystem, ns: Namespace, ctx: CommandContext, forceFua: boolean): Promise<CommandResult> {
  const range = blockRange(ns, ctx);
  checkTransfer(range, ctx);
  const data = await ctx.receive();
  await volumeCall(ns.volume.write(range.offset, data, { fua: forceFua || forceUnitAccess(ctx) }), false, subsystem);
  subsystem.counters.writeCommands++;
  subsystem.counters.bytesWritten += range.length;
  return ok();
}

async function writeZeroes(ns: Namespace, ctx: CommandContext, forceFua: boolean): Promise<CommandResult> {
  const range = blockRange(ns, ctx);
  const deallocate = (ctx.sqe.cdw(12) & (1 << 25)) !== 0;
  // A discard reads back as zeroes (BlockVolume contract), so DEAC may release the space.
  const done = deallocate ? ns.volume.discard(range.offset, range.length) : ns.volume.writeZeroes(range.offset, range.length, { fua: forceFua || forceUnitAccess(ctx) });
  await volumeCall(done, false);
  return ok();
}

async function datasetManagement(ns: Namespace, ctx: CommandContext): Promise<CommandResult> {
  const ranges = (ctx.sqe.cdw(10) & 0xff) + 1;
  const deallocate = (ctx.sqe.cdw(11) & (1 << 2)) !== 0;
  if (ctx.transferLength < ranges * DSM_RANGE_LENGTH) {
    fail(GenericStatus.DataSglLengthInvalid, `dataset management with ${ranges} ranges needs ${ranges * DSM_RANGE_LENGTH} bytes`);
  }
  const parts = await ctx.receive();
  if (!deallocate) return ok(); // integral read/write hints only: nothing to do
  const list = concat(parts, ranges * DSM_RANGE_LENGTH);
  const view = new DataView(list.buffer, list.byteOffset, list.length);
  const byteRanges: BlockRange[] = [];
  for (let i = 0; i < ranges; i++) {
    const nlb = view.getUint32(i * DSM_RANGE_LENGTH + 4, true);
    const slba = Number(view.getBigUint64(i * DSM_RANGE_LENGTH + 8, true));
    if (nlb === 0) continue;
    byteRanges.push(checkedRange(ns, slba, nlb));
  }
  await volumeCall(Promise.all(byteRanges.map((r) => ns.volume.discard(r.offset, r.length))), false);
  return ok();
}

function concat(parts: readonly Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1 && parts[0]!.length >= length) return parts[0]!;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    if (at >= length) break;
    const take = part.subarray(0, length - at);
    out.set(take, at);
    at += take.length;
  }
  return out;
}

/**
 * Volume errors as NVMe statuses. Outcomes the cluster may still settle (a timeout, a leader change)
 * clear DNR so the host retries; corruption and I/O errors are media errors; a full cluster is
 * Capacity Exceeded.
 */
async function volumeCall<T>(operation: Promise<T>, isRead: boolean, subsystem?: NvmSubsystem): Promise<T> {
  try {
    return await operation;
  } catch (err) {
    if (err instanceof NvmeStatusError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    if (isFastblockError(err, ErrorCode.NO_SPACE)) throw new NvmeStatusError(generic(GenericStatus.CapacityExceeded), message);
    if (isFastblockError(err, ErrorCode.IO_ERROR) || isFastblockError(err, ErrorCode.CORRUPT)) {
      if (subsystem) subsystem.counters.mediaErrors++;
      const sc = isRead ? MediaStatus.UnrecoveredReadError : MediaStatus.WriteFault;
      throw new NvmeStatusError(status(StatusCodeType.MediaError, sc), message);
    }
    const retriable = isFastblockError(err) && (err.retriable || err.code === ErrorCode.TIMEOUT);
    throw new NvmeStatusError(status(StatusCodeType.Generic, GenericStatus.InternalError, !retriable), message);
  }
}
