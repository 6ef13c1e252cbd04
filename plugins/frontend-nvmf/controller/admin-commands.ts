/**
 * Admin commands: what a Linux host issues to bring a controller up and keep it (Identify, Get Log
 * Page, Set/Get Features, Keep Alive, Asynchronous Event Request, Abort). Anything else is answered
 * with Invalid Opcode; the discovery controller answers only its subset.
 */
import {
  ControllerType,
  IDENTIFY_LENGTH,
  Oncs,
  activeNamespaceList,
  commandSetCombinations,
  emptyIdentify,
  identifyController,
  identifyNamespace,
  namespaceDescriptors,
} from '../nvme/identify.js';
import { commandsSupportedLog, discoveryLog, errorLog, firmwareSlotLog, smartLog } from '../nvme/log-pages.js';
import { AdminOpcode, Feature, IdentifyCns, LogPage } from '../nvme/opcodes.js';
import { CommandSpecificStatus, GenericStatus, NvmeStatusError, commandSpecific, fail } from '../nvme/status.js';
import { IoCounters } from '../subsystem/io-counters.js';
import type { CommandContext, CommandResult } from './command-context.js';
import { ok } from './command-context.js';
import type { Controller } from './controller.js';
import { ASYNC_EVENT_LIMIT, ERROR_LOG_ENTRIES } from './limits.js';

/** Where the discovery log says hosts reach this target. */
export interface AdvertisedPort {
  readonly address: string;
  readonly port: number;
}

const DISCOVERY_OPCODES = new Set<number>([
  AdminOpcode.GetLogPage,
  AdminOpcode.Identify,
  AdminOpcode.SetFeatures,
  AdminOpcode.GetFeatures,
  AdminOpcode.AsyncEventRequest,
  AdminOpcode.KeepAlive,
]);

export async function executeAdmin(controller: Controller, ctx: CommandContext, port: AdvertisedPort): Promise<CommandResult> {
  const opcode = ctx.sqe.opcode;
  if (controller.subsystem.kind === 'discovery' && !DISCOVERY_OPCODES.has(opcode)) {
    fail(GenericStatus.InvalidOpcode, `admin opcode 0x${opcode.toString(16)} on a discovery controller`);
  }
  switch (opcode) {
    case AdminOpcode.Identify:
      return identify(controller, ctx);
    case AdminOpcode.GetLogPage:
      return getLogPage(controller, ctx, port);
    case AdminOpcode.SetFeatures:
      return setFeatures(controller, ctx);
    case AdminOpcode.GetFeatures:
      return getFeatures(controller, ctx);
    case AdminOpcode.KeepAlive:
      controller.keepAlive();
      return ok();
    case AdminOpcode.AsyncEventRequest:
      return controller.requestAsyncEvent();
    case AdminOpcode.Abort:
      // Commands are not abortable once received; dword 0 bit 0 set says "not aborted".
      return ok(undefined, 1);
    default:
      fail(GenericStatus.InvalidOpcode, `admin opcode 0x${opcode.toString(16)} is not supported`);
  }
}

function identify(controller: Controller, ctx: CommandContext): CommandResult {
  const cns = ctx.sqe.cdw(10) & 0xff;
  const csi = ctx.sqe.cdw(11) >>> 24;
  const nsid = ctx.sqe.nsid;
  const subsystem = controller.subsystem;
  if (cns === IdentifyCns.Controller) {
    const nvm = subsystem.kind === 'nvm';
    return ok(
      identifyController({
        cntlid: controller.cntlid,
        type: nvm ? ControllerType.Io : ControllerType.Discovery,
        serial: nvm ? subsystem.serial : '',
        model: controller.limits.model,
        firmware: controller.limits.firmware,
        subnqn: subsystem.nqn,
        mdts: Math.log2(controller.limits.maxTransferBytes / 4096),
        maxCommands: controller.limits.maxQueueEntries,
        namespaces: nvm ? subsystem.maxNsid : 0,
        oncs: nvm ? Oncs.DatasetManagement | Oncs.WriteZeroes : 0,
        // A writethrough volume's writes resolve only once durable (BlockVolume contract): no volatile
        // cache to flush. A writeback export's do once in its write-back log: a cache hosts must flush.
        volatileWriteCache: nvm && subsystem.volatileWriteCache,
        inCapsuleDataSize: controller.limits.inCapsuleDataSize,
        asyncEventLimit: ASYNC_EVENT_LIMIT,
        errorLogEntries: ERROR_LOG_ENTRIES,
      }),
    );
  }
  if (subsystem.kind === 'discovery') fail(GenericStatus.InvalidField, `identify CNS ${cns} on a discovery controller`);
  switch (cns) {
    case IdentifyCns.Namespace: {
      const ns = subsystem.namespaces.get(nsid);
      if (!ns) {
        // An id in range with no namespace is inactive: zeroes. Out of range is an error.
        if (nsid === 0 || nsid > subsystem.maxNsid) fail(GenericStatus.InvalidNamespaceOrFormat, `no namespace ${nsid}`);
        return ok(new Uint8Array(IDENTIFY_LENGTH));
      }
      return ok(identifyNamespace(ns));
    }
    case IdentifyCns.ActiveNamespaceList:
      if (nsid >= 0xfffffffe) fail(GenericStatus.InvalidNamespaceOrFormat, 'active namespace list after an invalid id');
      return ok(activeNamespaceList(subsystem.namespaces.keys(), nsid));
    case IdentifyCns.NamespaceDescriptors: {
      const ns = subsystem.namespaces.get(nsid);
      if (!ns) fail(GenericStatus.InvalidNamespaceOrFormat, `no namespace ${nsid}`);
      return ok(namespaceDescriptors(ns.nguid, ns.uuid));
    }
    case IdentifyCns.CommandSetController:
      if (csi !== 0) fail(GenericStatus.InvalidField, `command set ${csi} is not supported`);
      return ok(emptyIdentify());
    case IdentifyCns.CommandSetNamespace:
      if (csi !== 0) fail(GenericStatus.InvalidField, `command set ${csi} is not supported`);
      if (!subsystem.namespaces.has(nsid)) fail(GenericStatus.InvalidNamespaceOrFormat, `no namespace ${nsid}`);
      return ok(emptyIdentify());
    case IdentifyCns.CommandSetCombinations:
      return ok(commandSetCombinations());
    default:
      fail(GenericStatus.InvalidField, `identify CNS 0x${cns.toString(16)} is not supported`);
  }
}

function getLogPage(controller: Controller, ctx: CommandContext, port: AdvertisedPort): CommandResult {
  const cdw10 = ctx.sqe.cdw(10);
  const lid = cdw10 & 0xff;
  const dwords = ((ctx.sqe.cdw(11) & 0xffff) * 0x10000 + (cdw10 >>> 16)) + 1;
  const offset = ctx.sqe.cdw(13) * 0x100000000 + ctx.sqe.cdw(12);
  if (offset % 4 !== 0) fail(GenericStatus.InvalidField, 'log page offset not dword aligned');
  const subsystem = controller.subsystem;
  let page: Uint8Array;
  if (subsystem.kind === 'discovery') {
    if (lid !== LogPage.Discovery) throw new NvmeStatusError(commandSpecific(CommandSpecificStatus.InvalidLogPage), `log page 0x${lid.toString(16)} on a discovery controller`);
    page = discoveryLog(
      subsystem.generation,
      subsystem.entries().map((e) => ({ subtype: e.subtype, nqn: e.nqn, address: e.address, port: e.port, portId: 1 })),
    );
  } else {
    switch (lid) {
      case LogPage.Error:
        page = errorLog(controller.errorEntries, ERROR_LOG_ENTRIES);
        break;
      case LogPage.Smart: {
        const c = subsystem.counters;
        page = smartLog({
          dataUnitsRead: IoCounters.dataUnits(c.bytesRead),
          dataUnitsWritten: IoCounters.dataUnits(c.bytesWritten),
          readCommands: c.readCommands,
          writeCommands: c.writeCommands,
          powerOnHours: Math.floor((Date.now() - c.startedAt) / 3_600_000),
          mediaErrors: c.mediaErrors,
          errorLogEntries: controller.errorTotal,
        });
        break;
      }
      case LogPage.FirmwareSlot:
        page = firmwareSlotLog(controller.limits.firmware);
        break;
      case LogPage.ChangedNamespaceList:
        // CDW10 bit 15, Retain Asynchronous Event.
        page = controller.changedNamespaceLog((cdw10 & (1 << 15)) !== 0);
        break;
      case LogPage.CommandsSupported:
        page = commandsSupportedLog();
        break;
      default:
        throw new NvmeStatusError(commandSpecific(CommandSpecificStatus.InvalidLogPage), `log page 0x${lid.toString(16)} is not supported`);
    }
  }
  if (offset >= page.length && offset > 0) fail(GenericStatus.InvalidField, 'log page offset past the end of the page');
  // The host asked for `dwords`; what lies past the page reads as zeroes.
  const out = new Uint8Array(dwords * 4);
  out.set(page.subarray(offset, offset + out.length));
  return ok(out);
}

function setFeatures(controller: Controller, ctx: CommandContext): CommandResult {
  const fid = ctx.sqe.cdw(10) & 0xff;
  const value = ctx.sqe.cdw(11);
  if (ctx.sqe.cdw(10) >>> 31) throw new NvmeStatusError(commandSpecific(CommandSpecificStatus.FeatureNotSaveable), 'features cannot be saved');
  switch (fid) {
    case Feature.NumberOfQueues: {
      if (controller.subsystem.kind === 'discovery') break;
      const nsqr = value & 0xffff;
      const ncqr = value >>> 16;
      if (nsqr === 0xffff || ncqr === 0xffff) fail(GenericStatus.InvalidField, 'number of queues 65536 requested');
      // Only before the first I/O queue exists (NVMe Base: Number of Queues).
      if (controller.ioQueues.size > 0) fail(GenericStatus.CommandSequenceError, 'number of queues set after I/O queues were created');
      const granted = Math.min(Math.max(nsqr, ncqr) + 1, controller.limits.maxIoQueues);
      controller.grantedIoQueues = granted;
      return ok(undefined, ((granted - 1) << 16) | (granted - 1));
    }
    case Feature.AsyncEventConfig:
      controller.asyncEventConfig = value >>> 0;
      return ok(undefined, value);
    case Feature.KeepAliveTimer:
      controller.setKeepAliveTimeout(value >>> 0);
      return ok();
    case Feature.VolatileWriteCache:
      // Only where a volatile write cache is present (VWC); WCE 0 makes this controller's writes
      // write through (each one FUA), the cache stays for the subsystem's other controllers.
      if (controller.subsystem.kind !== 'nvm' || !controller.subsystem.volatileWriteCache) break;
      controller.writeCacheEnabled = (value & 1) === 1;
      return ok(undefined, value & 1);
  }
  fail(GenericStatus.InvalidField, `feature 0x${fid.toString(16)} cannot be set`);
}

const SELECT_SUPPORTED_CAPABILITIES = 3;

function getFeatures(controller: Controller, ctx: CommandContext): CommandResult {
  const fid = ctx.sqe.cdw(10) & 0xff;
  const select = (ctx.sqe.cdw(10) >> 8) & 0x7;
  const nvm = controller.subsystem.kind === 'nvm';
  const writeCache = controller.subsystem.kind === 'nvm' && controller.subsystem.volatileWriteCache;
  const known = (writeCache && fid === Feature.VolatileWriteCache) || fid === Feature.AsyncEventConfig || fid === Feature.KeepAliveTimer || (nvm && (fid === Feature.NumberOfQueues || fid === Feature.Arbitration || fid === Feature.PowerManagement || fid === Feature.ErrorRecovery || fid === Feature.WriteAtomicity));
  if (!known) fail(GenericStatus.InvalidField, `feature 0x${fid.toString(16)} is not supported`);
  // Current, default and saved read the same (nothing is saveable); capabilities: changeable or not.
  if (select === SELECT_SUPPORTED_CAPABILITIES) {
    const changeable = fid === Feature.AsyncEventConfig || fid === Feature.KeepAliveTimer || fid === Feature.NumberOfQueues || fid === Feature.VolatileWriteCache;
    return ok(undefined, changeable ? 0x4 : 0);
  }
  if (select > SELECT_SUPPORTED_CAPABILITIES) fail(GenericStatus.InvalidField, `feature select ${select}`);
  switch (fid) {
    case Feature.NumberOfQueues: {
      const n = controller.grantedIoQueues - 1;
      return ok(undefined, (n << 16) | n);
    }
    case Feature.AsyncEventConfig:
      return ok(undefined, controller.asyncEventConfig);
    case Feature.KeepAliveTimer:
      return ok(undefined, controller.keepAliveTimeoutMs);
    case Feature.VolatileWriteCache:
      // Current: WCE as set (enabled unless the host disabled it); default and saved: enabled.
      return ok(undefined, select === 0 ? (controller.writeCacheEnabled ? 1 : 0) : 1);
    default:
      return ok(undefined, 0);
  }
}
