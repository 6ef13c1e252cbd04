/**
 * The protobuf wire format, as much of it as raft.proto uses: varints, little-endian doubles,
 * length-delimited fields (strings, nested messages, packed repeated scalars). The node-message
 * codec writes and reads its header field by field with these: protobufjs builds a Writer and an
 * op list per message on encode and a message object per nested message on decode, which at one
 * node message per destination per round was a visible share of a shard's CPU and garbage.
 *
 * Integers are JavaScript numbers: varints up to 2^53 are exact.
 */
import { ErrorCode, FastblockError } from '../../errors.js';

export const WireType = { VARINT: 0, FIXED64: 1, BYTES: 2, FIXED32: 5 } as const;

export const key = (field: number, wireType: number): number => field * 8 + wireType;

export function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

/** Bytes of a length-delimited field of `length` bytes under `field`, key included. */
export function delimitedSize(field: number, length: number): number {
  return varintSize(key(field, WireType.BYTES)) + varintSize(length) + length;
}

/** Writes fields into a buffer sized beforehand (the encoder computes sizes first). */
export class WireWriter {
  at = 0;
  private readonly view: DataView;

  constructor(readonly out: Buffer) {
    this.view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  }

  varint(value: number): void {
    const out = this.out;
    while (value > 0x7fffffff) {
      // Above 31 bits the bit operators would truncate: divide instead.
      out[this.at++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    while (value >= 0x80) {
      out[this.at++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    out[this.at++] = value;
  }

  /** A varint field; zero (the proto3 default) is left out. */
  varintField(field: number, value: number): void {
    if (value === 0) return;
    this.varint(key(field, WireType.VARINT));
    this.varint(value);
  }

  /** A double field; zero is left out. */
  doubleField(field: number, value: number): void {
    if (value === 0) return;
    this.varint(key(field, WireType.FIXED64));
    this.double(value);
  }

  double(value: number): void {
    this.view.setFloat64(this.at, value, true);
    this.at += 8;
  }

  /** The key and length of a length-delimited field whose `length` bytes the caller writes next. */
  delimited(field: number, length: number): void {
    this.varint(key(field, WireType.BYTES));
    this.varint(length);
  }

  bytes(bytes: Uint8Array): void {
    this.out.set(bytes, this.at);
    this.at += bytes.byteLength;
  }
}

/** A forward-only reader of one message's bytes; malformed input throws PROTOCOL. */
export class WireReader {
  at: number;
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    readonly end = bytes.byteLength,
  ) {
    this.at = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.at >= this.end;
  }

  varint(): number {
    const bytes = this.bytes;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) throw malformed('truncated varint');
      const byte = bytes[this.at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
    }
    throw malformed('varint longer than 10 bytes');
  }

  double(): number {
    if (this.at + 8 > this.end) throw malformed('truncated double');
    const value = this.view.getFloat64(this.at, true);
    this.at += 8;
    return value;
  }

  /** The end of a length-delimited field whose bytes start at `at` once this returns. */
  delimitedEnd(): number {
    const length = this.varint();
    const end = this.at + length;
    if (end > this.end) throw malformed('length-delimited field past the end');
    return end;
  }

  /** Skips a field of an unknown number (a newer peer's), by its wire type. */
  skip(wireType: number): void {
    switch (wireType) {
      case WireType.VARINT:
        this.varint();
        return;
      case WireType.FIXED64:
        this.advance(8);
        return;
      case WireType.BYTES:
        this.at = this.delimitedEnd();
        return;
      case WireType.FIXED32:
        this.advance(4);
        return;
      default:
        throw malformed(`unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (this.at + n > this.end) throw malformed('truncated field');
    this.at += n;
  }
}

function malformed(reason: string): FastblockError {
  return new FastblockError(ErrorCode.PROTOCOL, `malformed raft node message: ${reason}`, { reason });
}
