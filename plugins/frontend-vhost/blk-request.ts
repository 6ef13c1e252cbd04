/**
 * One virtio-blk request (virtio 1.2, 5.2.6) executed against a BlockVolume, zero copy: data moves
 * between the volume and views on mapped guest memory (read() fills them, write() is handed them).
 *
 * Layout of a chain: device-readable bytes = 16-byte header (u32 type, u32 reserved, u64 sector) and,
 * for OUT / DISCARD / WRITE_ZEROES, the payload; device-writable bytes = data for IN / GET_ID, then
 * one status byte. Framing across descriptors is not assumed.
 *
 * A request the guest got wrong (bad header, range past the end, data outside guest memory) gets an
 * error status. Only a chain whose status byte itself is unusable is a RingError.
 */
import type { BlockVolume } from '../../kernel/contracts/block.js';
import type { GuestMemory } from './guest-memory.js';
import { RingError, type Chain } from './split-ring.js';
import { BLK_LIMITS } from './blk-config.js';

const SECTOR = 512;
export const BlkType = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, DISCARD: 11, WRITE_ZEROES: 13 } as const;
export const BlkStatus = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;
const ID_BYTES = 20;
const WRITE_ZEROES_FLAG_UNMAP = 1;

/** Why a request failed, for the log; the guest only sees the status byte. */
export interface BlkOutcome {
  readonly status: number;
  /** Bytes the device wrote into device-writable buffers, status included (the used length). */
  readonly written: number;
  readonly reason?: string;
}

interface Buffers {
  readable: Uint8Array[];
  writable: Uint8Array[];
  readableBytes: number;
  writableBytes: number;
  outside: boolean;
}

function mapChain(memory: GuestMemory, chain: Chain): Buffers {
  const buffers: Buffers = { readable: [], writable: [], readableBytes: 0, writableBytes: 0, outside: false };
  for (const segment of chain.segments) {
    const views = memory.guest(segment.address, segment.length);
    if (!views) {
      buffers.outside = true;
      continue;
    }
    if (segment.writable) {
      buffers.writable.push(...views);
      buffers.writableBytes += segment.length;
    } else {
      buffers.readable.push(...views);
      buffers.readableBytes += segment.length;
    }
  }
  return buffers;
}

/** Views on [from, to) of a scatter list, without copying. */
export function slice(list: readonly Uint8Array[], from: number, to: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const part of list) {
    const end = at + part.length;
    if (end > from && at < to) out.push(part.subarray(Math.max(0, from - at), Math.min(part.length, to - at)));
    at = end;
    if (at >= to) break;
  }
  return out;
}

function gather(list: readonly Uint8Array[], from: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of slice(list, from, from + length)) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Hears that a request finished, its status byte written: `written` is the used length. */
export type BlkDone = (head: number, status: number, written: number, reason: string | undefined) => void;

export class BlkRequest {
  private buffers: Buffers | undefined;
  /** The used length of a fast-path request once it succeeds. */
  private written = 1;

  private constructor(
    readonly chain: Chain,
    private readonly memory: GuestMemory,
    private readonly status: Uint8Array,
  ) {}

  /** Takes the chain's status byte; throws RingError only when there is no usable one. */
  static map(memory: GuestMemory, chain: Chain): BlkRequest {
    const last = chain.segments[chain.segments.length - 1];
    if (!last || !last.writable || last.length < 1) throw new RingError('request chain has no device-writable status byte', { head: chain.head });
    const status = memory.view(last.address + last.length - 1, 1);
    if (!status) throw new RingError('request status byte outside guest memory', { head: chain.head, address: last.address });
    return new BlkRequest(chain, memory, status);
  }

  /**
   * Runs the request; `done` hears of it once the status byte is written, whatever happened.
   * Reads and writes of data, nearly every request, take a path with one promise reaction and
   * no async frame, BigInt, DataView or scatter list of its own: each of those was an allocation
   * per request, and the gateway shares the host's CPU with the guest.
   */
  execute(volume: BlockVolume, serial: string, done: BlkDone): void {
    let fast: Promise<unknown> | undefined;
    try {
      fast = this.fastPath(volume);
    } catch (err) {
      this.failed(done, err);
      return;
    }
    if (fast !== undefined) {
      fast.then(
        () => this.finish(done, BlkStatus.OK, this.written, undefined),
        (err: unknown) => this.failed(done, err),
      );
      return;
    }
    this.run(volume, serial).then(
      (outcome) => this.finish(done, outcome.status, outcome.written, outcome.reason),
      (err: unknown) => this.failed(done, err),
    );
  }

  private finish(done: BlkDone, status: number, written: number, reason: string | undefined): void {
    this.status[0] = status;
    done(this.chain.head, status, written, reason);
  }

  private failed(done: BlkDone, err: unknown): void {
    this.finish(done, BlkStatus.IOERR, 1, (err as Error).message);
  }

  /**
   * IN and OUT laid out as Linux lays them out (a 16-byte header descriptor, data descriptors,
   * a status descriptor; an IN with its data in one descriptor), every descriptor inside one
   * region of guest memory, the range plainly inside the volume. Any other request, or anything
   * odd about this one, returns undefined and takes run(), which checks everything and says why
   * it fails.
   */
  private fastPath(volume: BlockVolume): Promise<unknown> | undefined {
    const segments = this.chain.segments;
    const count = segments.length;
    const head = segments[0]!;
    if (count < 3 || head.writable || head.length !== 16 || segments[count - 1]!.length !== 1) return undefined;
    const memory = this.memory;
    const type = memory.u32(head.address);
    const sectorLow = memory.u32(head.address + 8);
    const sectorHigh = memory.u32(head.address + 12);
    // Past 2^21 the byte offset would not be an exact number; run() refuses such a range.
    if (type === undefined || sectorLow === undefined || sectorHigh === undefined || sectorHigh >= 2 ** 21) return undefined;
    const offset = (sectorHigh * 2 ** 32 + sectorLow) * SECTOR;
    if (type === BlkType.IN) {
      const data = segments[1]!;
      if (count !== 3 || !data.writable || data.length === 0 || data.length % SECTOR !== 0 || offset + data.length > volume.size) return undefined;
      const into = memory.view(data.address, data.length);
      if (into === undefined) return undefined;
      this.written = data.length + 1;
      return volume.read(offset, data.length, into);
    }
    if (type !== BlkType.OUT) return undefined;
    const parts: Uint8Array[] = [];
    let length = 0;
    for (let i = 1; i < count - 1; i++) {
      const data = segments[i]!;
      if (data.writable) return undefined;
      const view = memory.view(data.address, data.length);
      if (view === undefined) return undefined;
      parts.push(view);
      length += data.length;
    }
    if (length === 0 || length % SECTOR !== 0 || offset + length > volume.size) return undefined;
    return volume.write(offset, parts);
  }

  private fail(status: number, reason: string): BlkOutcome {
    return { status, written: 1, reason };
  }

  private async run(volume: BlockVolume, serial: string): Promise<BlkOutcome> {
    const b = (this.buffers = mapChain(this.memory, this.chain));
    if (b.outside) return this.fail(BlkStatus.IOERR, 'a data descriptor points outside guest memory');
    if (b.readableBytes < 16) return this.fail(BlkStatus.IOERR, 'request header shorter than 16 bytes');
    const header = new DataView(gather(b.readable, 0, 16).buffer);
    const type = header.getUint32(0, true);
    const sector = header.getBigUint64(8, true);
    const dataIn = b.writableBytes - 1;
    const dataOut = b.readableBytes - 16;
    const offset = sector * BigInt(SECTOR);
    const inRange = (length: number): boolean => offset + BigInt(length) <= BigInt(volume.size);
    switch (type) {
      case BlkType.IN: {
        if (dataIn % SECTOR !== 0) return this.fail(BlkStatus.IOERR, 'read length not a multiple of 512');
        if (!inRange(dataIn)) return this.fail(BlkStatus.IOERR, 'read past the end of the volume');
        let at = Number(offset);
        const reads: Promise<Uint8Array>[] = [];
        for (const part of slice(b.writable, 0, dataIn)) {
          reads.push(volume.read(at, part.length, part));
          at += part.length;
        }
        await Promise.all(reads);
        return { status: BlkStatus.OK, written: dataIn + 1 };
      }
      case BlkType.OUT: {
        if (dataOut % SECTOR !== 0) return this.fail(BlkStatus.IOERR, 'write length not a multiple of 512');
        if (!inRange(dataOut)) return this.fail(BlkStatus.IOERR, 'write past the end of the volume');
        await volume.write(Number(offset), slice(b.readable, 16, b.readableBytes));
        return { status: BlkStatus.OK, written: 1 };
      }
      case BlkType.FLUSH:
        await volume.flush();
        return { status: BlkStatus.OK, written: 1 };
      case BlkType.GET_ID: {
        const id = new TextEncoder().encode(serial).subarray(0, ID_BYTES);
        const room = Math.min(ID_BYTES, dataIn);
        const padded = new Uint8Array(room);
        padded.set(id.subarray(0, room));
        let at = 0;
        for (const part of slice(b.writable, 0, room)) {
          part.set(padded.subarray(at, at + part.length));
          at += part.length;
        }
        return { status: BlkStatus.OK, written: room + 1 };
      }
      case BlkType.DISCARD:
      case BlkType.WRITE_ZEROES:
        return this.ranges(volume, type, dataOut);
      default:
        return this.fail(BlkStatus.UNSUPP, `unsupported request type ${type}`);
    }
  }

  private async ranges(volume: BlockVolume, type: number, dataOut: number): Promise<BlkOutcome> {
    if (dataOut === 0 || dataOut % 16 !== 0) return this.fail(BlkStatus.IOERR, 'range list not a multiple of 16 bytes');
    const count = dataOut / 16;
    if (count > BLK_LIMITS.maxRangeSegments) return this.fail(BlkStatus.UNSUPP, `more than ${BLK_LIMITS.maxRangeSegments} range(s) in one request`);
    const list = new DataView(gather(this.buffers!.readable, 16, dataOut).buffer);
    const limit = type === BlkType.DISCARD ? BLK_LIMITS.maxDiscardSectors : BLK_LIMITS.maxWriteZeroesSectors;
    for (let i = 0; i < count; i++) {
      const sector = list.getBigUint64(16 * i, true);
      const sectors = list.getUint32(16 * i + 8, true);
      const flags = list.getUint32(16 * i + 12, true);
      const offset = sector * BigInt(SECTOR);
      const length = sectors * SECTOR;
      if (sectors > limit) return this.fail(BlkStatus.IOERR, 'range longer than the advertised limit');
      if (offset + BigInt(length) > BigInt(volume.size)) return this.fail(BlkStatus.IOERR, 'range past the end of the volume');
      if (type === BlkType.DISCARD) {
        if (flags !== 0) return this.fail(BlkStatus.UNSUPP, 'discard range with flags set');
        await volume.discard(Number(offset), length);
      } else {
        if (flags & ~WRITE_ZEROES_FLAG_UNMAP) return this.fail(BlkStatus.UNSUPP, 'write-zeroes range with unknown flags');
        await volume.writeZeroes(Number(offset), length);
      }
    }
    return { status: BlkStatus.OK, written: 1 };
  }
}
