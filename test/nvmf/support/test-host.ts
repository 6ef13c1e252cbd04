/**
 * A small NVMe/TCP host for the tests: one connection (one queue), commands by cid with their
 * data moved the way a Linux host moves it (in-capsule up to a limit, H2CData after an R2T, C2HData
 * for reads), responses matched by cid so many commands can be in flight.
 */
import { connect, type Socket } from 'node:net';
import {
  C2HDecoder,
  F,
  HOST_NQN,
  NO_DIGESTS,
  SGL_ICD,
  SGL_TRANSPORT,
  T,
  capsuleCmd,
  connectCapsule,
  cqeOf,
  dataFieldsOf,
  h2cData,
  icReq,
  sqe,
  termFieldsOf,
  type C2HPdu,
  type Cqe,
  type Digests,
  type SqeFields,
} from './host-pdu.js';

export interface Reply {
  readonly cqe: Cqe;
  readonly data: Uint8Array;
  /** The response came as C2HData with SUCCESS, no CapsuleResp. */
  readonly viaSuccessFlag: boolean;
}

interface Pending {
  readonly writeData?: Uint8Array;
  readonly chunks: Uint8Array[];
  resolve(reply: Reply): void;
  reject(err: Error): void;
}

export class TestHost {
  private readonly decoder = new C2HDecoder();
  private readonly pending = new Map<number, Pending>();
  private nextCid = 1;
  private icResolve: ((p: C2HPdu) => void) | undefined;
  readonly received: C2HPdu[] = [];
  maxH2CData = 0;
  termReq: { fes: number; fei: number } | undefined;
  readonly closed: Promise<void>;
  /** In-capsule data limit for writes (the Linux host uses IOCCSZ; admin queue 8 KiB). */
  inCapsuleLimit = 8192;

  private constructor(
    private readonly socket: Socket,
    readonly digests: Digests,
  ) {
    socket.on('data', (chunk: Buffer) => {
      for (const p of this.decoder.push(chunk)) this.onPdu(p);
    });
    this.closed = new Promise((resolve) => socket.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('connection closed'));
      this.pending.clear();
      resolve();
    }));
    socket.on('error', () => undefined);
  }

  static async open(port: number, digests: Digests = NO_DIGESTS, icOptions: { hpda?: number } = {}): Promise<TestHost> {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const host = new TestHost(socket, digests);
    const icResp = new Promise<C2HPdu>((resolve) => (host.icResolve = resolve));
    socket.write(icReq({ dgst: (digests.header ? 1 : 0) | (digests.data ? 2 : 0), hpda: icOptions.hpda ?? 0 }));
    const resp = await icResp;
    host.maxH2CData = new DataView(resp.header.buffer, resp.header.byteOffset).getUint32(12, true);
    return host;
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  close(): void {
    this.socket.destroy();
  }

  allocateCid(): number {
    const cid = this.nextCid;
    this.nextCid = (this.nextCid + 1) & 0xffff || 1;
    return cid;
  }

  /** Sends a command; `write` data goes in the capsule when small enough, else after the R2T. */
  command(fields: Omit<SqeFields, 'cid'> & { cid?: number }, write?: Uint8Array, readLength = 0): Promise<Reply> {
    const cid = fields.cid ?? this.allocateCid();
    const inCapsule = write !== undefined && write.length <= this.inCapsuleLimit;
    const s = sqe({
      ...fields,
      cid,
      sglType: fields.sglType ?? (inCapsule ? SGL_ICD : SGL_TRANSPORT),
      sglLength: fields.sglLength ?? (write ? write.length : readLength),
    });
    return new Promise((resolve, reject) => {
      this.pending.set(cid, { writeData: inCapsule ? undefined : write, chunks: [], resolve, reject });
      this.socket.write(capsuleCmd(s, inCapsule ? write : undefined, this.digests));
    });
  }

  async connectAdmin(subnqn: string, kato = 0, extra: { hostnqn?: string; hostId?: Uint8Array } = {}): Promise<Reply> {
    return this.connectQueue({ qid: 0, sqsize: 31, kato, subnqn, hostnqn: extra.hostnqn ?? HOST_NQN, hostId: extra.hostId });
  }

  connectQueue(fields: Parameters<typeof connectCapsule>[0]): Promise<Reply> {
    const cid = fields.cid ?? this.allocateCid();
    return new Promise((resolve, reject) => {
      this.pending.set(cid, { chunks: [], resolve, reject });
      this.socket.write(connectCapsule({ ...fields, cid }, this.digests));
    });
  }

  propertyGet(offset: number, eightBytes: boolean): Promise<Reply> {
    return this.command({ opcode: 0x7f, fctype: 0x04, cdw10: eightBytes ? 1 : 0, cdw11: offset });
  }

  propertySet(offset: number, value: number): Promise<Reply> {
    return this.command({ opcode: 0x7f, fctype: 0x00, cdw10: 0, cdw11: offset, cdw12: value });
  }

  /** CC: EN=1, CSS=NVM, IOSQES=6, IOCQES=4, as Linux writes it. */
  enable(): Promise<Reply> {
    return this.propertySet(0x14, 0x00460001);
  }

  identify(cns: number, nsid = 0, cdw11 = 0): Promise<Reply> {
    return this.command({ opcode: 0x06, nsid, cdw10: cns, cdw11 }, undefined, 4096);
  }

  read(nsid: number, lba: number, blocks: number, blockSize = 4096): Promise<Reply> {
    return this.command({ opcode: 0x02, nsid, cdw10: lba, cdw12: blocks - 1 }, undefined, blocks * blockSize);
  }

  write(nsid: number, lba: number, data: Uint8Array, blockSize = 4096, fua = false): Promise<Reply> {
    return this.command({ opcode: 0x01, nsid, cdw10: lba, cdw12: (data.length / blockSize - 1) | (fua ? 1 << 30 : 0) }, data);
  }

  private onPdu(p: C2HPdu): void {
    this.received.push(p);
    if (p.type === T.ICResp) {
      this.icResolve?.(p);
      return;
    }
    if (p.type === T.C2HTermReq) {
      this.termReq = termFieldsOf(p);
      return;
    }
    if (p.type === T.R2T) {
      const f = dataFieldsOf(p);
      const pending = this.pending.get(f.cccid);
      if (!pending?.writeData) throw new Error(`R2T for cid ${f.cccid} without data to send`);
      const data = pending.writeData.subarray(f.offset, f.offset + f.length);
      for (let at = 0; at < data.length; at += this.maxH2CData) {
        const part = data.subarray(at, at + this.maxH2CData);
        this.socket.write(h2cData(f.cccid, f.ttag, f.offset + at, part, at + part.length === data.length, this.digests));
      }
      return;
    }
    if (p.type === T.C2HData) {
      const f = dataFieldsOf(p);
      const pending = this.pending.get(f.cccid);
      if (!pending) throw new Error(`C2HData for unknown cid ${f.cccid}`);
      pending.chunks.push(p.data);
      if (p.flags & F.SUCCESS) {
        this.pending.delete(f.cccid);
        pending.resolve({ cqe: { dw0: 0, dw1: 0, sqhd: 0, sqid: 0, cid: f.cccid, status: 0 }, data: Buffer.concat(pending.chunks), viaSuccessFlag: true });
      }
      return;
    }
    if (p.type === T.CapsuleResp) {
      const cqe = cqeOf(p);
      const pending = this.pending.get(cqe.cid);
      if (!pending) throw new Error(`CapsuleResp for unknown cid ${cqe.cid}`);
      this.pending.delete(cqe.cid);
      pending.resolve({ cqe, data: Buffer.concat(pending.chunks), viaSuccessFlag: false });
    }
  }
}

/** Status field helpers: SCT and SC of a CQE status. */
export function sct(status: number): number {
  return (status >> 9) & 0x7;
}

export function sc(status: number): number {
  return (status >> 1) & 0xff;
}
