/**
 * The protobuf wire format, as much of it as the per-I/O headers use: varints, little-endian
 * doubles, length-delimited fields (strings, nested messages, packed repeated scalars). The data
 * request/reply headers (client/data-protocol.ts) and the raft node-message header
 * (kernel/raft/wire/codec.ts) are written and read field by field with these: protobufjs builds a
 * Writer and an op list per message on encode and a message object per nested message on decode,
 * which at tens of thousands of messages a second was a visible share of CPU and garbage. The
 * .proto files stay the definitions; the codecs' tests check both ways against protobufjs.
 *
 * Integers are JavaScript numbers: varints up to 2^53 are exact; a larger one decodes to a number
 * that is not a safe integer, which the callers' range checks refuse.
 */
import { ErrorCode, FastblockError } from '../errors.js';

export const WireType = { VARINT: 0, FIXED64: 1, BYTES: 2, FIXED32: 5 } as const;

export const tag = (field: number, wireType: number): number => field * 8 + wireType;

export function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

/** Writes `value` (a non-negative integer) at `at`; returns the position after it. */
export function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value > 0x7fffffff) {
    // Above 31 bits the bit operators would truncate: divide instead.
    out[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  while (value >= 0x80) {
    out[at++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[at++] = value;
  return at;
}

/** Bytes of a length-delimited field of `length` bytes under `field`, key included. */
export function delimitedSize(field: number, length: number): number {
  return varintSize(tag(field, WireType.BYTES)) + varintSize(length) + length;
}

/** Writes fields into a buffer sized beforehand (the encoder computes sizes first). */
export class WireWriter {
  at = 0;
  private readonly view: DataView;

  constructor(readonly out: Buffer) {
    this.view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  }

  varint(value: number): void {
    this.at = writeVarint(this.out, this.at, value);
  }

  /** A varint field; zero (the proto3 default) is left out. */
  varintField(field: number, value: number): void {
    if (value === 0) return;
    this.varint(tag(field, WireType.VARINT));
    this.varint(value);
  }

  /** A double field; zero is left out. */
  doubleField(field: number, value: number): void {
    if (value === 0) return;
    this.varint(tag(field, WireType.FIXED64));
    this.double(value);
  }

  double(value: number): void {
    this.view.setFloat64(this.at, value, true);
    this.at += 8;
  }

  /** The key and length of a length-delimited field whose `length` bytes the caller writes next. */
  delimited(field: number, length: number): void {
    this.varint(tag(field, WireType.BYTES));
    this.varint(length);
  }

  bytes(bytes: Uint8Array): void {
    this.out.set(bytes, this.at);
    this.at += bytes.byteLength;
  }
}

/** A forward-only reader of one message's bytes (or of [start, end) of them); malformed input throws PROTOCOL naming `what`. */
export class WireReader {
  at: number;
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    readonly what: string,
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
      if (this.at >= this.end) throw this.malformed('truncated varint');
      const byte = bytes[this.at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
    }
    throw this.malformed('varint longer than 10 bytes');
  }

  double(): number {
    if (this.at + 8 > this.end) throw this.malformed('truncated double');
    const value = this.view.getFloat64(this.at, true);
    this.at += 8;
    return value;
  }

  /** A length-delimited field's bytes, as a view. */
  bytesField(): Uint8Array {
    const end = this.delimitedEnd();
    const view = this.bytes.subarray(this.at, end);
    this.at = end;
    return view;
  }

  /** The end of a length-delimited field whose bytes start at `at` once this returns. */
  delimitedEnd(): number {
    const length = this.varint();
    const end = this.at + length;
    if (end > this.end) throw this.malformed('length-delimited field past the end');
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
        throw this.malformed(`unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (this.at + n > this.end) throw this.malformed('truncated field');
    this.at += n;
  }

  private malformed(reason: string): FastblockError {
    return new FastblockError(ErrorCode.PROTOCOL, `undecodable ${this.what}: ${reason}`, { reason, bytes: this.end, at: this.at });
  }
}
