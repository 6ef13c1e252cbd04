/**
 * What the two kinds of subsystem share: an NQN and the controllers hosts created on it. Controller
 * ids are dynamic (the host asks for 0xFFFF and gets the next free id), unique within the subsystem.
 */
import type { Controller } from '../controller/controller.js';
import { CommandSpecificStatus, NvmeStatusError, commandSpecific } from '../nvme/status.js';

/** Largest dynamic controller id (0xFFF0 and above are reserved). */
const MAX_CNTLID = 0xffef;

export abstract class Subsystem {
  abstract readonly kind: 'nvm' | 'discovery';
  readonly controllers = new Map<number, Controller>();
  private nextCntlid = 1;

  constructor(readonly nqn: string) {}

  allocateControllerId(): number {
    for (let tries = 0; tries < MAX_CNTLID; tries++) {
      const id = this.nextCntlid;
      this.nextCntlid = id === MAX_CNTLID ? 1 : id + 1;
      if (!this.controllers.has(id)) return id;
    }
    throw new NvmeStatusError(commandSpecific(CommandSpecificStatus.ConnectControllerBusy), `subsystem ${this.nqn} has no free controller id`);
  }
}
