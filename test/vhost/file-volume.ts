/**
 * A BlockVolume on a plain file, for the VM suites only: unlike the memory target it survives a
 * SIGKILL of the daemon under test (the bytes are in the page cache), which the reconnect scenario
 * needs, and the test process reads the same bytes through the same contract to compare.
 * Reads land directly in the caller's buffer (guest memory) and writes go out from its views.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { BlockVolume, BlockVolumeProvider } from '../../kernel/contracts/block.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

export class FileVolume implements BlockVolume {
  readonly blockSize = 4096;

  private constructor(readonly name: string, readonly size: number, private readonly file: FileHandle) {}

  static async open(name: string, path: string): Promise<FileVolume> {
    const file = await open(path, 'r+');
    const { size } = await file.stat();
    return new FileVolume(name, size, file);
  }

  private check(offset: number, length: number): void {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `range [${offset}, +${length}) outside ${this.name}`, { offset, length, size: this.size });
    }
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    this.check(offset, length);
    const out = into ?? new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.file.read(out, done, length - done, offset + done);
      if (bytesRead === 0) {
        out.fill(0, done, length);
        break;
      }
      done += bytesRead;
    }
    return out;
  }

  async write(offset: number, data: readonly Uint8Array[]): Promise<void> {
    const length = data.reduce((sum, d) => sum + d.length, 0);
    this.check(offset, length);
    const { bytesWritten } = await this.file.writev(data as Uint8Array[], offset);
    if (bytesWritten !== length) throw new FastblockError(ErrorCode.IO_ERROR, 'short write', { bytesWritten, length });
  }

  async flush(): Promise<void> {
    await this.file.datasync();
  }

  async discard(offset: number, length: number): Promise<void> {
    await this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    const zeroes = new Uint8Array(Math.min(length, 1 << 20));
    for (let at = 0; at < length; at += zeroes.length) {
      await this.file.write(zeroes, 0, Math.min(zeroes.length, length - at), offset + at);
    }
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

/** Volumes named "pool/image" backed by files the test created. */
export class FileVolumeProvider implements BlockVolumeProvider {
  constructor(private readonly files: ReadonlyMap<string, string>) {}

  async open(name: string): Promise<FileVolume> {
    const path = this.files.get(name);
    if (!path) throw new FastblockError(ErrorCode.NOT_FOUND, `no volume named ${name}`, { name });
    return FileVolume.open(name, path);
  }

  async list(): Promise<string[]> {
    return [...this.files.keys()];
  }
}
