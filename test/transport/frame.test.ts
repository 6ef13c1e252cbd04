import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { crc32, crc32Range } from '../../kernel/rpc/checksum.js';
import { FrameKind, PREAMBLE_BYTES, encodeFrameHead, type Frame } from '../../kernel/rpc/frame.js';
import { FrameDecoder } from '../../kernel/rpc/frame-decoder.js';
import { ReceiveSlabPool } from '../../kernel/rpc/receive-slabs.js';

function frameBytes(kind: FrameKind, method: number, id: number, header: Uint8Array, payload: Uint8Array[], crcPayload = true): Buffer {
  return Buffer.concat([encodeFrameHead(kind, method, id, header, payload, crcPayload), ...payload]);
}

function decodeAll(bytes: Buffer, split: number, decoder = new FrameDecoder()): Frame[] {
  const frames: Frame[] = [];
  for (let at = 0; at < bytes.length; at += split) decoder.push(bytes.subarray(at, at + split), (f) => void frames.push(f));
  return frames;
}

function decodeError(bytes: Buffer, decoder = new FrameDecoder()): FastblockError {
  try {
    decodeAll(bytes, bytes.length, decoder);
  } catch (err) {
    assert.instance(err, FastblockError);
    return err as FastblockError;
  }
  assert.unreachable('expected a decode error');
  throw new Error();
}

test('frames survive any split of the stream, payload scatter lists included', () => {
  const header = Buffer.from('header-bytes');
  const payload = [randomBytes(1000), randomBytes(3), Buffer.alloc(0), randomBytes(70_000)];
  const stream = Buffer.concat([
    frameBytes(FrameKind.REQUEST, 0x201, 7, header, payload),
    frameBytes(FrameKind.MESSAGE, 9, 0, new Uint8Array(0), []),
    frameBytes(FrameKind.REPLY, 0x201, 7, header, [randomBytes(5)], false),
  ]);
  for (const split of [1, 7, 24, 25, 4096, stream.length]) {
    const frames = decodeAll(stream, split);
    assert.is(frames.length, 3, `split ${split}`);
    assert.is(frames[0]!.kind, FrameKind.REQUEST);
    assert.is(frames[0]!.method, 0x201);
    assert.is(frames[0]!.requestId, 7);
    assert.equal(Buffer.from(frames[0]!.header), header);
    assert.equal(Buffer.from(frames[0]!.payload), Buffer.concat(payload));
    assert.is(frames[1]!.payload.length, 0);
    assert.is(frames[2]!.payload.length, 5);
  }
});

test('a payload that arrives in one chunk is handed out as a view, not a copy', () => {
  const payload = randomBytes(4096);
  const bytes = frameBytes(FrameKind.REQUEST, 1, 1, Buffer.from('h'), [payload]);
  const frames = decodeAll(bytes, bytes.length);
  assert.is((frames[0]!.payload as Buffer).buffer, bytes.buffer);
});

test('a frame that straddles chunks is assembled once: header and payload share one buffer of the frame\'s size', () => {
  const payload = randomBytes(100_000);
  const bytes = frameBytes(FrameKind.REPLY, 2, 3, Buffer.from('straddle'), [payload]);
  const frames = decodeAll(bytes, 65_536);
  assert.is(frames.length, 1);
  const { header, payload: got } = frames[0]!;
  assert.is(header.buffer, got.buffer);
  assert.is(got.byteOffset + got.byteLength, bytes.length);
  assert.ok(Buffer.from(got).equals(payload));
});

test('reading into the buffers the decoder picks: frames come out whole, a large payload lands in place', () => {
  const big = randomBytes(300_000);
  const small = [randomBytes(4096), randomBytes(10), randomBytes(70_000)];
  const stream = Buffer.concat([
    ...small.map((p, i) => frameBytes(FrameKind.REPLY, 1, i + 1, Buffer.from('h'), [p])),
    frameBytes(FrameKind.REPLY, 1, 9, Buffer.from('big'), [big]),
    frameBytes(FrameKind.MESSAGE, 2, 0, new Uint8Array(0), []),
  ]);
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  const targets = new Set<ArrayBufferLike>();
  // A socket read: as many bytes as the kernel has (here up to 50,000) into the buffer offered.
  for (let at = 0; at < stream.length; ) {
    const into = decoder.readBuffer();
    targets.add(into.buffer);
    const count = stream.copy(into, 0, at, Math.min(stream.length, at + 50_000));
    at += count;
    decoder.received(count, (f) => void frames.push(f));
  }
  assert.equal(frames.map((f) => f.requestId), [1, 2, 3, 9, 0]);
  small.forEach((p, i) => assert.ok(Buffer.from(frames[i]!.payload).equals(p), `frame ${i + 1}`));
  assert.ok(Buffer.from(frames[3]!.payload).equals(big));
  assert.ok(targets.has(frames[3]!.payload.buffer), 'the large payload was read into its own buffer');
  assert.is(decoder.pendingBytes, 0);
});

test('reading into the decoder\'s buffers: a frame keeps arriving behind its start, so frames that fit the slab are never copied', () => {
  const payloads = Array.from({ length: 6 }, () => randomBytes(100_000));
  const stream = Buffer.concat(payloads.map((p, i) => frameBytes(FrameKind.REQUEST, 1, i + 1, Buffer.from('h'), [p])));
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  for (let at = 0; at < stream.length; ) {
    const count = stream.copy(decoder.readBuffer(), 0, at, Math.min(stream.length, at + 30_000));
    at += count;
    decoder.received(count, (f) => void frames.push(f));
  }
  payloads.forEach((p, i) => assert.ok(Buffer.from(frames[i]!.payload).equals(p), `frame ${i + 1}`));
  const buffers = frames.map((f) => f.payload.buffer);
  // The first slab (256 KiB) takes two; the third moves, with what arrived of it, to the next
  // slab, sized for these frames, which takes it and the rest in place.
  assert.is(buffers[0], buffers[1]);
  assert.is.not(buffers[2], buffers[1]);
  assert.is(buffers[2], buffers[3]);
  assert.is(buffers[3], buffers[5]);
  assert.ok(buffers[2]!.byteLength >= 8 * 100_000, 'the second slab holds 8 to 16 frames of this size');
});

/** Feeds `stream` to the decoder in socket-sized reads; returns the frames and every buffer read into. */
function readThrough(decoder: FrameDecoder, stream: Buffer, onFrame: (frame: Frame) => void): Set<ArrayBufferLike> {
  const targets = new Set<ArrayBufferLike>();
  for (let at = 0; at < stream.length; ) {
    const into = decoder.readBuffer();
    targets.add(into.buffer);
    const count = stream.copy(into, 0, at, Math.min(stream.length, at + 40_000));
    at += count;
    decoder.received(count, onFrame);
  }
  return targets;
}

test('a receive slab is reused only once every frame parsed from it was released; a held frame keeps its bytes', () => {
  const pool = new ReceiveSlabPool();
  const decoder = new FrameDecoder(undefined, pool);
  const batch = () => Array.from({ length: 12 }, () => randomBytes(60_000));
  const stream = (payloads: Buffer[]) => Buffer.concat(payloads.map((p, i) => frameBytes(FrameKind.REQUEST, 1, i + 1, Buffer.from('h'), [p])));
  // Slabs grow to suit these frames (the first is the smallest size); then one frame is kept (a
  // handler still using it) and the others are released as they arrive.
  readThrough(decoder, stream(batch()), (f) => f.release());
  const first = batch();
  let kept: Frame | undefined;
  readThrough(decoder, stream(first), (f) => {
    if (kept === undefined) kept = f;
    else f.release();
  });
  const keptSlab = kept!.payload.buffer;
  for (let round = 0; round < 6; round++) {
    const payloads = batch();
    const got: Buffer[] = [];
    const targets = readThrough(decoder, stream(payloads), (f) => {
      got.push(Buffer.from(f.payload));
      f.release();
    });
    assert.not.ok(targets.has(keptSlab), `round ${round}: the slab of a held frame was read into again`);
    payloads.forEach((p, i) => assert.ok(got[i]!.equals(p), `round ${round} frame ${i + 1}`));
  }
  assert.ok(Buffer.from(kept!.payload).equals(first[0]!), 'the held frame is intact');
  assert.ok(pool.reused > 0, 'released slabs were reused');
  const allocated = pool.allocated;
  // Released, the held frame's slab goes back to the pool and is read into again.
  kept!.release();
  kept!.release(); // idempotent: a second release must not free the slab under another frame
  let reusedKept = false;
  for (let round = 0; round < 4 && !reusedKept; round++) {
    reusedKept = readThrough(decoder, stream(batch()), (f) => f.release()).has(keptSlab);
  }
  assert.ok(reusedKept, 'the slab came back once its last frame was released');
  assert.is(pool.allocated, allocated, 'steady traffic allocates no new slab');
});

test('frames that are never released keep their slabs out of the pool (the default contract)', () => {
  const pool = new ReceiveSlabPool();
  const decoder = new FrameDecoder(undefined, pool);
  const payloads = Array.from({ length: 40 }, () => randomBytes(50_000));
  const frames: Frame[] = [];
  readThrough(decoder, Buffer.concat(payloads.map((p, i) => frameBytes(FrameKind.REPLY, 1, i + 1, new Uint8Array(0), [p]))), (f) => void frames.push(f));
  assert.is(pool.reused, 0);
  payloads.forEach((p, i) => assert.ok(Buffer.from(frames[i]!.payload).equals(p), `frame ${i + 1}`));
});

test('reading into the decoder\'s buffers: a bad preamble is refused as it arrives, and the decoder refuses more', () => {
  const decoder = new FrameDecoder();
  const bad = Buffer.alloc(24, 0xee);
  const count = bad.copy(decoder.readBuffer());
  assert.throws(() => decoder.received(count, () => {}), /bad frame magic/);
  assert.throws(() => decoder.received(1, () => {}), /received after a decode error/);
});

test('a frame trickled in tiny segments costs about its own size, not an object per segment', () => {
  const payload = randomBytes(1024 * 1024);
  const bytes = frameBytes(FrameKind.REQUEST, 5, 9, Buffer.from('trickle'), [payload]);
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  let most = 0;
  for (let at = 0; at < bytes.length; at += 3) {
    decoder.push(Buffer.from(bytes.subarray(at, at + 3)), (f) => void frames.push(f));
    most = Math.max(most, decoder.pendingChunks);
  }
  assert.is(frames.length, 1);
  assert.ok(Buffer.from(frames[0]!.payload).equals(payload));
  assert.ok(most <= 1024 / 64 + 2, `${most} chunks held`);
});

test('oversized header or payload is refused from the preamble alone', () => {
  const decoder = new FrameDecoder({ maxHeaderBytes: 100, maxPayloadBytes: 1000 });
  const head = encodeFrameHead(FrameKind.REQUEST, 1, 1, new Uint8Array(0), [Buffer.alloc(1001)], false);
  const err = decodeError(head.subarray(0, PREAMBLE_BYTES), decoder);
  assert.is(err.code, ErrorCode.PROTOCOL);
  assert.match(err.message, /payload of 1001 bytes exceeds the limit of 1000/);
  const big = encodeFrameHead(FrameKind.REQUEST, 1, 1, Buffer.alloc(101), undefined, false);
  assert.match(decodeError(big, new FrameDecoder({ maxHeaderBytes: 100, maxPayloadBytes: 1000 })).message, /header of 101 bytes exceeds/);
});

test('bad magic, version, kind, flags and checksums are refused', () => {
  const good = frameBytes(FrameKind.REQUEST, 1, 1, Buffer.from('hh'), [Buffer.from('payload')]);
  const mutate = (offset: number, value: number) => {
    const copy = Buffer.from(good);
    copy[offset] = value;
    return copy;
  };
  assert.match(decodeError(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).message, /bad frame magic 0x2f/);
  assert.match(decodeError(mutate(5, 9)).message, /frame version 9/);
  assert.match(decodeError(mutate(6, 42)).message, /unknown frame kind 42/);
  assert.match(decodeError(mutate(7, 0x80)).message, /unknown frame flags/);
  const corruptPayload = mutate(good.length - 1, good[good.length - 1]! ^ 1);
  assert.is(decodeError(corruptPayload).code, ErrorCode.CORRUPT);
  const corruptHeader = mutate(PREAMBLE_BYTES, good[PREAMBLE_BYTES]! ^ 1);
  assert.is(decodeError(corruptHeader).code, ErrorCode.CORRUPT);
  const corruptId = mutate(12, 2);
  assert.is(decodeError(corruptId).code, ErrorCode.CORRUPT);
});

test('a decoder that failed refuses further input (its connection must close)', () => {
  const decoder = new FrameDecoder();
  decodeError(Buffer.alloc(24, 0xee), decoder);
  assert.throws(() => decoder.push(Buffer.from('x'), () => {}), /push after a decode error/);
});

test('the frame checksum is CRC-32 (IEEE) whichever implementation computes it, chained or not', () => {
  for (const size of [0, 1, 31, 511, 512, 4096, 131_072]) {
    const data = randomBytes(size);
    assert.is(crc32(data), zlibCrc32(data), `size ${size}`);
    const cut = size >> 1;
    assert.is(crc32(data.subarray(cut), crc32(data.subarray(0, cut))), zlibCrc32(data), `chained, size ${size}`);
    assert.is(crc32Range(data, cut, size, crc32Range(data, 0, cut)), zlibCrc32(data), `ranges, size ${size}`);
  }
});

test.run();
