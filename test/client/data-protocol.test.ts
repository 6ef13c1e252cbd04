/**
 * The data headers are written and read by hand (kernel/rpc/protobuf-wire.ts): they must stay the wire
 * format data.proto defines, so each direction is checked against protobufjs reading the .proto.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DataFlag,
  DataOp,
  DataStatus,
  MAX_DATA_LENGTH,
  MAX_EXTENTS,
  dataProto,
  dataReplyIsOk,
  decodeDataReply,
  decodeDataRequest,
  encodeDataReply,
  encodeDataRequest,
  encodeExtentsRequestHeader,
  encodeObjectField,
  encodeRequestHeader,
  toNumber,
} from '../../client/data-protocol.js';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { writeVarint } from '../../kernel/rpc/protobuf-wire.js';

const RequestType = dataProto.lookupType('fastblock.data.DataRequest');
const ReplyType = dataProto.lookupType('fastblock.data.DataReply');

/** A deterministic stream of awkward numbers: zero, varint size edges, 32-bit edges, up to 2^53 - 1. */
function* edgeNumbers(): Generator<number> {
  yield* [0, 1, 127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35 + 12_345, Number.MAX_SAFE_INTEGER];
}

/** A decoded request as plain numbers; the repeated `extents` (empty unless WRITE_EXTENTS) and `flags` when 0 left out, as decodeDataRequest does. */
const asPlain = (message: ReturnType<typeof RequestType.decode>) =>
  Object.fromEntries(
    Object.entries(RequestType.toObject(message, { defaults: true }))
      .filter(([k, v]) => k !== 'extents' && !(k === 'flags' && v === 0))
      .map(([k, v]) => [k, typeof v === 'string' ? v : toNumber(v)]),
  );

test('requests we encode decode with protobufjs, field for field', () => {
  for (const offset of edgeNumbers()) {
    for (const epoch of [0, 1, 300, 2 ** 40]) {
      const request = { op: DataOp.WRITE, pool: 3, pg: 4095, object: `img-é.${offset.toString(16).padStart(16, '0')}`, offset, length: 4096, epoch };
      assert.equal(asPlain(RequestType.decode(encodeDataRequest(request))), request);
    }
  }
  const zeroes = { op: DataOp.READ, pool: 0, pg: 0, object: 'o', offset: 0, length: 0, epoch: 0 };
  assert.equal(asPlain(RequestType.decode(encodeDataRequest(zeroes))), zeroes);
});

test('requests protobufjs encodes decode here, unknown fields skipped', () => {
  for (const offset of edgeNumbers()) {
    const request = { op: DataOp.DISCARD, pool: 2 ** 32 - 1, pg: 17, object: 'abc.0000000000000001', offset, length: 4 * 1024 * 1024, epoch: offset };
    assert.equal(decodeDataRequest(RequestType.encode(request).finish()), request);
  }
  // Field 99 as varint, fixed64, bytes and fixed32 (what a newer client might add), between known ones.
  const known = RequestType.encode({ op: 1, object: 'x', length: 512 }).finish();
  const unknown = Uint8Array.from([0x98, 0x06, 0x96, 0x01, 0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 0x9a, 0x06, 2, 9, 9, 0x9d, 0x06, 1, 2, 3, 4]);
  const decoded = decodeDataRequest(Uint8Array.from([...unknown, ...known]));
  assert.equal(decoded, { op: DataOp.READ, pool: 0, pg: 0, object: 'x', offset: 0, length: 512, epoch: 0 });
});

test('replies round-trip against protobufjs both ways', () => {
  const replies = [
    { status: DataStatus.OK, leaderHint: undefined, epoch: 7, message: '' },
    { status: DataStatus.OK, leaderHint: undefined, epoch: 0, message: '' },
    { status: DataStatus.NOT_LEADER, leaderHint: 0, epoch: 2 ** 33, message: '' },
    { status: DataStatus.NOT_LEADER, leaderHint: 41, epoch: 1, message: 'ask osd.41' },
    { status: DataStatus.IO_ERROR, leaderHint: undefined, epoch: 9, message: 'disk on fire: ünïcode' },
  ];
  for (const reply of replies) {
    assert.equal(decodeDataReply(encodeDataReply(reply)), reply);
    const ours = ReplyType.toObject(ReplyType.decode(encodeDataReply(reply)), { defaults: true });
    assert.is(ours.status, reply.status);
    assert.is(ours.leaderHint, reply.leaderHint === undefined ? 0 : reply.leaderHint + 1);
    assert.is(toNumber(ours.epoch), reply.epoch);
    assert.is(ours.message, reply.message);
    const theirs = ReplyType.encode({ status: reply.status, leaderHint: reply.leaderHint === undefined ? 0 : reply.leaderHint + 1, epoch: reply.epoch, message: reply.message }).finish();
    assert.equal(decodeDataReply(theirs), reply);
  }
});

test('the OK fast check agrees with the full decoder', () => {
  const headers = [
    encodeDataReply({ status: DataStatus.OK, epoch: 7, message: '' }),
    encodeDataReply({ status: DataStatus.OK, epoch: 2 ** 40, message: '' }),
    encodeDataReply({ status: DataStatus.OK, epoch: 0, message: '' }),
    ReplyType.encode({ status: 0, leaderHint: 0, epoch: 3, message: '' }).finish(), // defaults written out
    encodeDataReply({ status: DataStatus.NOT_LEADER, leaderHint: 2, epoch: 7, message: '' }),
    encodeDataReply({ status: DataStatus.STALE_EPOCH, epoch: 9, message: 'moved' }),
    encodeDataReply({ status: DataStatus.OK, epoch: 1, message: 'ok, but says something' }),
    Uint8Array.from([0x18]), // truncated epoch: not OK, and the full decoder says why
    Uint8Array.from([0x18, 0x80]),
  ];
  for (const header of headers) {
    let full: boolean;
    try {
      const reply = decodeDataReply(header);
      full = reply.status === DataStatus.OK && reply.message === '';
    } catch {
      full = false;
    }
    if (dataReplyIsOk(header)) assert.ok(full, `fast OK on ${Buffer.from(header).toString('hex')}`);
  }
  assert.ok(dataReplyIsOk(headers[0]!) && dataReplyIsOk(headers[1]!) && dataReplyIsOk(headers[2]!) && dataReplyIsOk(headers[3]!), 'plain OK replies take the fast path');
});

test('malformed headers are PROTOCOL errors, bad values INVALID_ARGUMENT', () => {
  const good = encodeDataRequest({ op: DataOp.WRITE, pool: 1, pg: 2, object: 'obj', offset: 4096, length: 4096, epoch: 3 });
  const cases: [Uint8Array, ErrorCode][] = [
    [good.subarray(0, good.length - 1), ErrorCode.PROTOCOL], // truncated varint
    [Uint8Array.from([0x22, 0x05, 0x61]), ErrorCode.PROTOCOL], // string longer than the header
    [Uint8Array.from([0x0b]), ErrorCode.PROTOCOL], // wire type 3 (group)
    [Uint8Array.from([0x08, ...new Array(10).fill(0xff), 0x01]), ErrorCode.PROTOCOL], // varint of 11 bytes
    [encodeDataRequest({ op: 9 as DataOp, pool: 1, pg: 1, object: 'o', offset: 0, length: 1, epoch: 1 }), ErrorCode.INVALID_ARGUMENT],
    [encodeDataRequest({ op: DataOp.READ, pool: 1, pg: 1, object: '', offset: 0, length: 1, epoch: 1 }), ErrorCode.INVALID_ARGUMENT],
    [Uint8Array.from([0x08, 0x01, 0x22, 0x01, 0x6f, 0x28, ...new Array(9).fill(0xff), 0x01]), ErrorCode.INVALID_ARGUMENT], // offset 2^64 - 1
  ];
  for (const [bytes, code] of cases) {
    try {
      decodeDataRequest(bytes);
      assert.unreachable(`decoded ${Buffer.from(bytes).toString('hex')}`);
    } catch (err) {
      assert.ok(isFastblockError(err, code), `${Buffer.from(bytes).toString('hex')}: ${String(err)}`);
    }
  }
  try {
    decodeDataReply(Uint8Array.from([0x08]));
    assert.unreachable('decoded a truncated reply');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.PROTOCOL));
  }
});

test('WRITE_EXTENTS requests round-trip here and against protobufjs (packed and unpacked extents)', () => {
  const cases = [
    [0, 4096],
    [0, 4096, 8192, 4096, 2 ** 22 - 512, 512],
    [2 ** 35, 1, Number.MAX_SAFE_INTEGER - 10, 10],
    Array.from({ length: 2 * MAX_EXTENTS }, (_, i) => (i % 2 === 0 ? i * 4096 : 4096)),
  ];
  for (const extents of cases) {
    let length = 0;
    for (let i = 1; i < extents.length; i += 2) length += extents[i]!;
    const request = { op: DataOp.WRITE_EXTENTS, pool: 2, pg: 300, object: 'img.0000000000000007', offset: 0, length, epoch: 9, extents };
    const ours = encodeDataRequest(request);
    assert.equal(decodeDataRequest(ours), request);
    const parsed = RequestType.toObject(RequestType.decode(ours), { defaults: true });
    assert.is(parsed.op, DataOp.WRITE_EXTENTS);
    assert.equal((parsed.extents as unknown[]).map(toNumber), extents);
    assert.is(parsed.length, length);
    // protobufjs writes packed; a writer of the unpacked form (one key per value) must decode the same.
    assert.equal(decodeDataRequest(RequestType.encode(request).finish()), request);
    const unpacked = Uint8Array.from([
      ...RequestType.encode({ ...request, extents: [] }).finish(),
      ...extents.flatMap((value) => {
        const varint = new Uint8Array(10);
        return [0x40, ...varint.subarray(0, writeVarint(varint, 0, value))];
      }),
    ]);
    assert.equal(decodeDataRequest(unpacked), request);
  }
  // The header function and the request encoder agree.
  const field = encodeObjectField('o');
  assert.equal(
    Buffer.from(encodeExtentsRequestHeader(1, 2, field, 8, 3, [0, 4, 8, 4])),
    Buffer.from(encodeDataRequest({ op: DataOp.WRITE_EXTENTS, pool: 1, pg: 2, object: 'o', offset: 0, length: 8, epoch: 3, extents: [0, 4, 8, 4] })),
  );
});

test('malformed WRITE_EXTENTS requests are INVALID_ARGUMENT (or PROTOCOL when they do not parse)', () => {
  const field = encodeObjectField('obj');
  const header = (length: number, extents: readonly number[]) => encodeExtentsRequestHeader(1, 2, field, length, 3, extents);
  const tooMany = Array.from({ length: 2 * (MAX_EXTENTS + 1) }, (_, i) => (i % 2 === 0 ? i * 8 : 1));
  const cases: [string, Uint8Array, ErrorCode][] = [
    ['no extents', encodeDataRequest({ op: DataOp.WRITE_EXTENTS, pool: 1, pg: 2, object: 'obj', offset: 0, length: 8, epoch: 3 }), ErrorCode.INVALID_ARGUMENT],
    ['empty extent list', header(0, []), ErrorCode.INVALID_ARGUMENT],
    ['odd count', header(8, [0, 4, 8]), ErrorCode.INVALID_ARGUMENT],
    ['zero-length extent', header(4, [0, 4, 8, 0]), ErrorCode.INVALID_ARGUMENT],
    ['overlapping', header(9, [0, 5, 4, 4]), ErrorCode.INVALID_ARGUMENT],
    ['descending', header(8, [8, 4, 0, 4]), ErrorCode.INVALID_ARGUMENT],
    ['same offset twice', header(8, [0, 4, 0, 4]), ErrorCode.INVALID_ARGUMENT],
    ['sum below length', header(12, [0, 4, 8, 4]), ErrorCode.INVALID_ARGUMENT],
    ['sum above length', header(4, [0, 4, 8, 4]), ErrorCode.INVALID_ARGUMENT],
    ['unsafe offset', header(4, [2 ** 60, 4]), ErrorCode.INVALID_ARGUMENT],
    ['offset + length past 2^53', header(16, [Number.MAX_SAFE_INTEGER - 8, 16]), ErrorCode.INVALID_ARGUMENT],
    [`${MAX_EXTENTS + 1} extents`, header(MAX_EXTENTS + 1, tooMany), ErrorCode.INVALID_ARGUMENT],
    ['total above MAX_DATA_LENGTH', header(MAX_DATA_LENGTH + 4096, [0, MAX_DATA_LENGTH, MAX_DATA_LENGTH, 4096]), ErrorCode.INVALID_ARGUMENT],
    ['extents with a plain WRITE', Uint8Array.from([...encodeDataRequest({ op: DataOp.WRITE, pool: 1, pg: 2, object: 'obj', offset: 0, length: 4, epoch: 3 }), 0x42, 2, 0, 4]), ErrorCode.INVALID_ARGUMENT],
    ['packed field truncated mid-varint', Uint8Array.from([0x08, 0x05, 0x22, 0x01, 0x6f, 0x30, 0x04, 0x42, 0x02, 0x00, 0x84]), ErrorCode.PROTOCOL],
    ['packed varint runs past its field', Uint8Array.from([0x08, 0x05, 0x22, 0x01, 0x6f, 0x30, 0x04, 0x42, 0x02, 0x00, 0x84, 0x01]), ErrorCode.PROTOCOL],
  ];
  for (const [what, bytes, code] of cases) {
    try {
      decodeDataRequest(bytes);
      assert.unreachable(`decoded ${what}`);
    } catch (err) {
      assert.ok(isFastblockError(err, code), `${what}: ${String(err)}`);
      if (code === ErrorCode.INVALID_ARGUMENT) assert.match((err as Error).message, /WRITE_EXTENTS|extents|out of bounds/, what);
    }
  }
  // Sound neighbours of those cases decode.
  assert.ok(decodeDataRequest(header(8, [0, 4, 4, 4])).extents);
  assert.ok(decodeDataRequest(header(MAX_EXTENTS, tooMany.slice(0, 2 * MAX_EXTENTS))).extents);
});

test('request flags (NOCACHE) round-trip here and against protobufjs; none is no field at all, as before', () => {
  const extents = [0, 4096, 8192, 4096];
  const requests = [
    { op: DataOp.WRITE, pool: 1, pg: 2, object: 'img.0000000000000001', offset: 8192, length: 4096, epoch: 7 },
    { op: DataOp.WRITE_EXTENTS, pool: 1, pg: 2, object: 'img.0000000000000001', offset: 0, length: 8192, epoch: 7, extents },
  ];
  for (const base of requests) {
    for (const flags of [DataFlag.NOCACHE, 0x80000001]) {
      const request = { ...base, flags };
      const ours = encodeDataRequest(request);
      assert.equal(decodeDataRequest(ours), request);
      assert.is(RequestType.toObject(RequestType.decode(ours), { defaults: true }).flags, flags);
      assert.equal(decodeDataRequest(RequestType.encode(request).finish()), request);
    }
    // 0, given or not: the header of before (no field 9), decoded without `flags`.
    const plain = Buffer.from(encodeDataRequest(base));
    assert.equal(Buffer.from(encodeDataRequest({ ...base, flags: 0 })), plain);
    assert.ok(!('flags' in decodeDataRequest(plain)));
    assert.ok(!('flags' in RequestType.toObject(RequestType.decode(plain))), 'no field 9');
  }
  // The header functions the client uses put them on the wire as encodeDataRequest does.
  const field = encodeObjectField('img.0000000000000001');
  assert.equal(Buffer.from(encodeRequestHeader(DataOp.WRITE, 1, 2, field, 8192, 4096, 7, DataFlag.NOCACHE)), Buffer.from(encodeDataRequest({ ...requests[0]!, flags: DataFlag.NOCACHE })));
  assert.equal(Buffer.from(encodeExtentsRequestHeader(1, 2, field, 8192, 7, extents, DataFlag.NOCACHE)), Buffer.from(encodeDataRequest({ ...requests[1]!, flags: DataFlag.NOCACHE })));
  assert.is(decodeDataRequest(encodeExtentsRequestHeader(1, 2, field, 8192, 7, extents, DataFlag.NOCACHE)).flags, DataFlag.NOCACHE);
});

test.run();
