/**
 * Protobuf wire primitives for the data service's per-I/O headers. protobufjs (reflection) builds
 * a Writer, an op list and a message object per header, and `toObject` another on decode: at
 * tens of thousands of I/Os a second that was a visible share of the gateway's CPU and of its
 * garbage. The data headers are small and fixed, so they are written and read here field by
 * field; data.proto stays the definition (test/client/data-protocol.test.ts checks both against
 * protobufjs).
 *
 * Integers are JavaScript numbers: varints up to 2^53 are exact; a larger one decodes to a number
 * that is not a safe integer, which the callers' range checks refuse.
 */
import { ErrorCode, FastblockError } from '../kernel/errors.js';

export const WireType = { VARINT: 0, FIXED64: 1, BYTES: 2, FIXED32: 5 } as const;

export function tag(field: number, wireType: number): number {
  return (field << 3) | wireType;
}

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
    // Above 31 bits the bit operators would truncate: divide instead (the low 7 bits survive ToInt32).
    out[at++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 0x80);
  }
  while (value >= 0x80) {
    out[at++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[at++] = value;
  return at;
}

/** A forward-only reader of one message; malformed input throws PROTOCOL naming `what`. */
export class WireReader {
  at = 0;

  constructor(
    readonly bytes: Uint8Array,
    private readonly what: string,
  ) {}

  get done(): boolean {
    return this.at >= this.bytes.length;
  }

  varint(): number {
    const bytes = this.bytes;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.at >= bytes.length) throw this.malformed('truncated varint');
      const byte = bytes[this.at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
    }
    throw this.malformed('varint longer than 10 bytes');
  }

  /** A length-delimited field's bytes, as a view. */
  bytesField(): Uint8Array {
    const length = this.varint();
    const end = this.at + length;
    if (end > this.bytes.length) throw this.malformed('length-delimited field past the end');
    const view = this.bytes.subarray(this.at, end);
    this.at = end;
    return view;
  }

  /** Skips a field this reader does not know (a newer peer may add fields). */
  skip(wireType: number): void {
    switch (wireType) {
      case WireType.VARINT:
        this.varint();
        return;
      case WireType.FIXED64:
        this.advance(8);
        return;
      case WireType.BYTES:
        this.bytesField();
        return;
      case WireType.FIXED32:
        this.advance(4);
        return;
      default:
        throw this.malformed(`unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (this.at + n > this.bytes.length) throw this.malformed('fixed-size field past the end');
    this.at += n;
  }

  private malformed(reason: string): FastblockError {
    return new FastblockError(ErrorCode.PROTOCOL, `undecodable ${this.what}: ${reason}`, { bytes: this.bytes.length, at: this.at });
  }
}
