/**
 * One queue pair: what a TCP connection becomes after its Connect. Before the Connect it accepts
 * nothing else; afterwards it routes Fabrics commands (Property Get/Set, Disconnect) and admin or
 * I/O commands to its controller.
 */
import type { Logger } from 'pino';
import { bytesEqual } from './bytes.js';
import type { CommandContext, CommandResult } from './command-context.js';
import { ok } from './command-context.js';
import { CONNECT_DATA_LENGTH, ConnectDataField, ConnectSqeField, DYNAMIC_CNTLID, invalidDataField, invalidSqeField, parseConnect, type ConnectRequest } from './connect.js';
import { Controller, type QueueLink } from './controller.js';
import { executeAdmin, type AdvertisedPort } from './admin-commands.js';
import { executeIo } from './io-commands.js';
import type { ControllerLimits } from './limits.js';
import { AdminOpcode, FabricsType } from '../nvme/opcodes.js';
import { CommandSpecificStatus, GenericStatus, NvmeStatusError, commandSpecific, fail } from '../nvme/status.js';
import type { DiscoverySubsystem } from '../subsystem/discovery-subsystem.js';
import type { NvmSubsystem } from '../subsystem/nvm-subsystem.js';

/** What a queue needs of the target that accepted its connection. */
export interface QueueDirectory {
  readonly limits: ControllerLimits;
  readonly advertised: AdvertisedPort;
  readonly logger: Logger;
  findSubsystem(nqn: string): NvmSubsystem | DiscoverySubsystem | undefined;
  controllerCreated(controller: Controller): void;
  controllerDestroyed(controller: Controller): void;
}

const ADMIN_QUEUE_MAX_ENTRIES = 32;

export class Queue implements QueueLink {
  qid = -1;
  controller: Controller | undefined;
  /** Submission queue entries, 1-based. */
  entries = ADMIN_QUEUE_MAX_ENTRIES;
  disableSqFlowControl = false;
  private head = 0;
  private connecting = false;

  constructor(
    private readonly directory: QueueDirectory,
    /** Ends the transport connection (and through it, this queue). */
    private readonly closeConnection: (reason: string) => void,
  ) {}

  get isConnected(): boolean {
    return this.controller !== undefined;
  }

  get isAdmin(): boolean {
    return this.qid === 0;
  }

  /** A command completed and its entry is free: the head moves (SQHD in every completion). */
  consumeEntry(): number {
    this.head = (this.head + 1) % this.entries;
    return this.head;
  }

  get sqhd(): number {
    return this.head;
  }

  close(reason: string): void {
    this.closeConnection(reason);
  }

  /** The transport connection is gone: an admin queue takes its controller with it. */
  closed(): void {
    const controller = this.controller;
    if (!controller) return;
    if (this.isAdmin) controller.destroy('admin queue closed');
    else controller.detachIoQueue(this);
  }

  async execute(ctx: CommandContext): Promise<CommandResult> {
    const sqe = ctx.sqe;
    if (sqe.opcode === AdminOpcode.Fabrics) return this.fabrics(ctx);
    const controller = this.controller;
    if (!controller) fail(GenericStatus.CommandSequenceError, 'no Connect on this queue (or it was disconnected)');
    if (controller.isDestroyed) fail(GenericStatus.CommandSequenceError, 'controller is gone');
    if (sqe.fused !== 0) fail(GenericStatus.InvalidField, 'fused operations are not supported');
    if (this.isAdmin) {
      if (!controller.ready) fail(GenericStatus.CommandSequenceError, 'controller is not enabled');
      return executeAdmin(controller, ctx, this.directory.advertised);
    }
    if (!controller.ready) fail(GenericStatus.CommandSequenceError, 'controller is not enabled');
    if (controller.subsystem.kind !== 'nvm') fail(GenericStatus.InvalidOpcode, 'no I/O on a discovery controller');
    return executeIo(controller.subsystem, ctx, controller.writeCacheEnabled);
  }

  private async fabrics(ctx: CommandContext): Promise<CommandResult> {
    const fctype = ctx.sqe.fctype;
    if (fctype === FabricsType.Connect) return this.connect(ctx);
    const controller = this.controller;
    if (!controller) fail(GenericStatus.CommandSequenceError, 'the first command on a queue must be Connect');
    switch (fctype) {
      case FabricsType.PropertyGet: {
        if (!this.isAdmin) fail(GenericStatus.InvalidField, 'Property Get on an I/O queue');
        const value = controller.getProperty(ctx.sqe.cdw(11), (ctx.sqe.cdw(10) & 0x7) === 1);
        return { status: 0, dw0: Number(value & 0xffffffffn), dw1: Number(value >> 32n) };
      }
      case FabricsType.PropertySet: {
        if (!this.isAdmin) fail(GenericStatus.InvalidField, 'Property Set on an I/O queue');
        const value = BigInt(ctx.sqe.cdw(12)) | (BigInt(ctx.sqe.cdw(13)) << 32n);
        controller.setProperty(ctx.sqe.cdw(11), (ctx.sqe.cdw(10) & 0x7) === 1, value);
        return ok();
      }
      case FabricsType.Disconnect:
        if (this.isAdmin) fail(GenericStatus.InvalidField, 'Disconnect on the admin queue');
        // The queue is deleted; the host closes the connection after the response.
        controller.detachIoQueue(this);
        this.controller = undefined;
        return ok();
      default:
        fail(GenericStatus.InvalidOpcode, `fabrics command type 0x${fctype.toString(16)} is not supported`);
    }
  }

  private async connect(ctx: CommandContext): Promise<CommandResult> {
    // Claimed before the first await: a second Connect pipelined behind this one must not pass too.
    if (this.controller || this.connecting) fail(GenericStatus.CommandSequenceError, 'queue already connected');
    this.connecting = true;
    try {
      return await this.connectOnce(ctx);
    } finally {
      this.connecting = false;
    }
  }

  private async connectOnce(ctx: CommandContext): Promise<CommandResult> {
    if (ctx.transferLength !== CONNECT_DATA_LENGTH) fail(GenericStatus.DataSglLengthInvalid, `Connect data must be ${CONNECT_DATA_LENGTH} bytes`);
    const parts = await ctx.receive();
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const request = parseConnect(ctx.sqe, data);
    if (request.recfmt !== 0) {
      throw new NvmeStatusError(commandSpecific(CommandSpecificStatus.ConnectIncompatibleFormat), `Connect record format ${request.recfmt}`);
    }
    const subsystem = this.directory.findSubsystem(request.subnqn);
    if (!subsystem) throw invalidDataField(ConnectDataField.subnqn, `no subsystem ${request.subnqn}`);
    if (request.hostnqn.length === 0) throw invalidDataField(ConnectDataField.hostnqn, 'empty host NQN');
    const limits = this.directory.limits;
    const maxEntries = request.qid === 0 ? ADMIN_QUEUE_MAX_ENTRIES : limits.maxQueueEntries;
    if (request.sqsize < 1 || request.sqsize + 1 > maxEntries) throw invalidSqeField(ConnectSqeField.sqsize, `queue size ${request.sqsize + 1} outside [2, ${maxEntries}]`);
    const controller = request.qid === 0 ? this.connectAdmin(request, subsystem) : this.connectIo(request, subsystem);
    this.entries = request.sqsize + 1;
    this.disableSqFlowControl = request.disableSqFlowControl;
    this.directory.logger.info(
      { cntlid: controller.cntlid, qid: this.qid, subnqn: subsystem.nqn, hostnqn: request.hostnqn, sqsize: request.sqsize, kato: request.kato },
      request.qid === 0 ? 'controller created' : 'I/O queue connected',
    );
    return ok(undefined, controller.cntlid);
  }

  private connectAdmin(request: ConnectRequest, subsystem: NvmSubsystem | DiscoverySubsystem): Controller {
    if (request.cntlid !== DYNAMIC_CNTLID) throw invalidDataField(ConnectDataField.cntlid, `admin Connect must ask for a dynamic controller id, not ${request.cntlid}`);
    const controller = new Controller(
      subsystem.allocateControllerId(),
      subsystem,
      request.hostnqn,
      request.hostId,
      this,
      this.directory.limits,
      this.directory.logger,
      (gone) => {
        gone.subsystem.controllers.delete(gone.cntlid);
        this.directory.controllerDestroyed(gone);
      },
    );
    subsystem.controllers.set(controller.cntlid, controller);
    this.qid = 0;
    this.controller = controller;
    controller.setKeepAliveTimeout(request.kato);
    this.directory.controllerCreated(controller);
    return controller;
  }

  private connectIo(request: ConnectRequest, subsystem: NvmSubsystem | DiscoverySubsystem): Controller {
    if (subsystem.kind === 'discovery') throw invalidSqeField(ConnectSqeField.qid, 'a discovery controller has no I/O queues');
    const controller = subsystem.controllers.get(request.cntlid);
    if (!controller || controller.isDestroyed) throw invalidDataField(ConnectDataField.cntlid, `no controller ${request.cntlid} in ${subsystem.nqn}`);
    // The association belongs to the host that created it: same host NQN and host id.
    if (request.hostnqn !== controller.hostNqn) throw invalidDataField(ConnectDataField.hostnqn, 'host NQN differs from the admin queue');
    if (!bytesEqual(request.hostId, controller.hostId)) throw invalidDataField(ConnectDataField.hostId, 'host id differs from the admin queue');
    if (!controller.ready) fail(GenericStatus.CommandSequenceError, 'controller is not enabled');
    if (request.qid > controller.grantedIoQueues) throw invalidSqeField(ConnectSqeField.qid, `queue ${request.qid} beyond the ${controller.grantedIoQueues} granted`);
    if (controller.ioQueues.has(request.qid)) throw invalidSqeField(ConnectSqeField.qid, `queue ${request.qid} already connected`);
    this.qid = request.qid;
    this.controller = controller;
    controller.attachIoQueue(this);
    return controller;
  }
}
