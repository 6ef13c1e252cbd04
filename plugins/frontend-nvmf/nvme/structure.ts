/**
 * A little-endian data structure under construction (Identify data, log pages): fixed offsets from
 * the specification's tables, written into a zeroed buffer.
 */
export class Structure {
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(length: number) {
    this.bytes = new Uint8Array(length);
    this.view = new DataView(this.bytes.buffer);
  }

  u8(offset: number, value: number): this {
    this.bytes[offset] = value;
    return this;
  }

  u16(offset: number, value: number): this {
    this.view.setUint16(offset, value, true);
    return this;
  }

  u32(offset: number, value: number): this {
    this.view.setUint32(offset, value >>> 0, true);
    return this;
  }

  u64(offset: number, value: number | bigint): this {
    this.view.setBigUint64(offset, BigInt(value), true);
    return this;
  }

  /** A 128-bit counter (SMART) from a safe integer: the low 64 bits; the high half stays zero. */
  u128(offset: number, value: number): this {
    return this.u64(offset, value);
  }

  bytesAt(offset: number, value: Uint8Array): this {
    this.bytes.set(value, offset);
    return this;
  }

  /** ASCII, space padded to `width` (SN, MN, FR, TRSVCID, TRADDR). */
  ascii(offset: number, width: number, text: string): this {
    this.bytes.fill(0x20, offset, offset + width);
    for (let i = 0; i < Math.min(width, text.length); i++) this.bytes[offset + i] = text.charCodeAt(i) & 0x7f;
    return this;
  }

  /** NUL-terminated UTF-8 within `width` bytes (NQNs). */
  string(offset: number, width: number, text: string): this {
    const encoded = new TextEncoder().encode(text).subarray(0, width - 1);
    this.bytes.set(encoded, offset);
    return this;
  }
}

/** Reads a NUL-terminated (or full-width) UTF-8 string from a fixed-width field. */
export function readString(bytes: Uint8Array, offset: number, width: number): string {
  const field = bytes.subarray(offset, offset + width);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end >= 0 ? field.subarray(0, end) : field);
}
