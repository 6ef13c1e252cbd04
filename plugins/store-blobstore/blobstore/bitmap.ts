/** A fixed-size bit set: the used-md-page, used-cluster and used-blob-id masks. */
export class Bitmap {
  readonly words: Uint32Array;
  private used = 0;

  constructor(readonly size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
  }

  get count(): number {
    return this.used;
  }

  get free(): number {
    return this.size - this.used;
  }

  has(bit: number): boolean {
    return (this.words[bit >>> 5] & (1 << (bit & 31))) !== 0;
  }

  set(bit: number): void {
    if (!this.has(bit)) {
      this.words[bit >>> 5] |= 1 << (bit & 31);
      this.used++;
    }
  }

  clear(bit: number): void {
    if (this.has(bit)) {
      this.words[bit >>> 5] &= ~(1 << (bit & 31));
      this.used--;
    }
  }

  /** First clear bit at or after `from`, wrapping once; -1 when full. */
  findClear(from = 0): number {
    if (this.used >= this.size) return -1;
    for (let pass = 0; pass < 2; pass++) {
      const start = pass === 0 ? from : 0;
      const end = pass === 0 ? this.size : from;
      for (let bit = start; bit < end; ) {
        const word = this.words[bit >>> 5];
        if (word === 0xffffffff && (bit & 31) === 0) {
          bit += 32;
          continue;
        }
        if (!this.has(bit)) return bit;
        bit++;
      }
    }
    return -1;
  }

  *bits(): IterableIterator<number> {
    for (let w = 0; w < this.words.length; w++) {
      let word = this.words[w];
      while (word !== 0) {
        const low = word & -word;
        yield w * 32 + (31 - Math.clz32(low));
        word ^= low;
      }
    }
  }

  /** Loads from bytes written by `bytes()`; recounts. */
  static from(size: number, bytes: Uint8Array): Bitmap {
    const bitmap = new Bitmap(size);
    new Uint8Array(bitmap.words.buffer).set(bytes.subarray(0, bitmap.words.byteLength));
    const tail = size & 31;
    if (tail !== 0) bitmap.words[bitmap.words.length - 1] &= (1 << tail) - 1;
    for (const word of bitmap.words) bitmap.used += popcount(word);
    return bitmap;
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.words.buffer, 0, this.words.byteLength);
  }
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
