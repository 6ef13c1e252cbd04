/** The raft wire codec: round trips, payloads by reference, malformed input rejected. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { MessageType, decodeNodeMessage, encodeNodeMessage, message } from '../../kernel/raft/index.js';
import type { NodeMessage } from '../../kernel/raft/index.js';
import { loadProto } from '../../kernel/rpc/proto.js';

function sample(): NodeMessage {
  const a = new Uint8Array(4096).fill(7);
  const b = new Uint8Array([1, 2, 3]);
  return {
    from: 3,
    to: 5,
    messages: [
      message({ type: MessageType.App, group: '1.2a', from: 3, to: 5, term: 2 ** 40, logTerm: 7, index: 99, commit: 98, entries: [
        { index: 100, term: 8, type: 0, data: a },
        { index: 101, term: 8, type: 0, data: new Uint8Array(0) },
        { index: 102, term: 8, type: 1, data: b },
      ] }),
      message({ type: MessageType.AppResp, group: '1.2b', from: 3, to: 5, term: 8, index: 10, reject: true, hint: 4, hintTerm: 2 }),
      message({ type: MessageType.Vote, group: '1.0', from: 3, to: 5, term: 9, index: 12, logTerm: 8, force: true }),
      message({ type: MessageType.Snap, group: '1.3', from: 3, to: 5, term: 8, snapshot: { meta: { index: 50, term: 6, membership: { voters: [3, 5, 9], learners: [11] } }, offset: 64, total: 200, data: b } }),
    ],
    beats: [{ group: '1.4', term: 8, commit: 77, seq: 3 }],
    beatResponses: [{ group: '1.5', term: 8, seq: 4, index: 80 }],
  };
}

test('round trip keeps every field and entry bytes', () => {
  const nm = sample();
  const { header, payload } = encodeNodeMessage(nm);
  const tail = Buffer.concat(payload);
  const back = decodeNodeMessage(header, tail);
  assert.equal(
    JSON.parse(JSON.stringify(back, (_k, v) => (v instanceof Uint8Array ? [...v] : v))),
    JSON.parse(JSON.stringify(nm, (_k, v) => (v instanceof Uint8Array ? [...v] : v))),
  );
});

test('group ids decode to themselves, each time, however many there are (the decoder keeps the names it saw)', () => {
  const groups = Array.from({ length: 5000 }, (_, i) => `${i % 7}.${i.toString(16)}`).concat(['', 'é.1', '1.a', 'a.1']);
  for (let round = 0; round < 2; round++) {
    for (const group of groups) {
      const nm: NodeMessage = { from: 1, to: 2, messages: [message({ type: MessageType.AppResp, group, from: 1, to: 2, term: 3 })], beats: [{ group, term: 3, commit: 1, seq: 2 }], beatResponses: [] };
      const { header } = encodeNodeMessage(nm);
      const back = decodeNodeMessage(header, new Uint8Array(0));
      assert.is(back.messages[0]!.group, group);
      assert.is(back.beats[0]!.group, group);
    }
  }
});

test('encoding puts the entries\' own buffers in the payload, uncopied and in order', () => {
  const nm = sample();
  const { payload } = encodeNodeMessage(nm);
  assert.is(payload.length, 3);
  assert.ok(payload[0] === nm.messages[0]!.entries[0]!.data);
  assert.ok(payload[1] === nm.messages[0]!.entries[2]!.data);
  assert.ok(payload[2] === nm.messages[3]!.snapshot!.data);
});

test('decoded entries view one copy of a tail that shares its buffer, and a tail that is its buffer as it is', () => {
  const { header, payload } = encodeNodeMessage(sample());
  const joined = Buffer.concat(payload);
  // A tail in a receive slab shared with other frames: copied once, so kept entries do not pin the slab.
  const slab = new Uint8Array(16 * joined.length);
  slab.set(joined, 100);
  const shared = slab.subarray(100, 100 + joined.length);
  const back = decodeNodeMessage(header, shared);
  const e = back.messages[0]!.entries[0]!.data;
  assert.is(e.byteLength, 4096);
  assert.ok(e.buffer !== slab.buffer, 'entries do not alias a shared receive slab');
  assert.ok(e.buffer === back.messages[0]!.entries[2]!.data.buffer, 'one copy for all entries');
  // A large frame read into a buffer of its own: nothing else lives there, the entries view it.
  const own = new Uint8Array(joined);
  const kept = decodeNodeMessage(header, own);
  assert.ok(kept.messages[0]!.entries[0]!.data.buffer === own.buffer, 'no copy of a tail that is its own buffer');
  assert.equal([...kept.messages[0]!.entries[2]!.data], [1, 2, 3]);
  // Borrowed bytes (reused by the transport once the handler returns) are copied even then.
  const borrowed = new Uint8Array(joined);
  const copied = decodeNodeMessage(header, borrowed, true);
  borrowed.fill(0xee);
  assert.ok(copied.messages[0]!.entries[0]!.data.buffer !== borrowed.buffer);
  assert.equal([...copied.messages[0]!.entries[2]!.data], [1, 2, 3], 'scribbling the borrowed bytes changes no entry');
});

test('a tail that does not match the header is a PROTOCOL error', () => {
  const { header, payload } = encodeNodeMessage(sample());
  const tail = Buffer.concat(payload);
  for (const bad of [tail.subarray(0, tail.length - 1), Buffer.concat([tail, Buffer.from([0])])]) {
    assert.throws(() => decodeNodeMessage(header, bad), (e: unknown) => isFastblockError(e, ErrorCode.PROTOCOL));
  }
});

test('garbage headers and unknown message types are PROTOCOL errors', () => {
  assert.throws(() => decodeNodeMessage(new Uint8Array([0xff, 0xff, 0xff]), new Uint8Array(0)), (e: unknown) => isFastblockError(e, ErrorCode.PROTOCOL));
  const nm = sample();
  const bad = { ...nm, messages: [{ ...nm.messages[1]!, type: 42 as never }] };
  const { header, payload } = encodeNodeMessage(bad);
  assert.throws(() => decodeNodeMessage(header, Buffer.concat(payload)), (e: unknown) => isFastblockError(e, ErrorCode.PROTOCOL));
});

test('entries out of sequence are refused when encoding', () => {
  const nm = sample();
  const app = nm.messages[0]!;
  const gap = { ...nm, messages: [{ ...app, entries: [app.entries[0]!, { ...app.entries[2]!, index: 105 }] }] };
  assert.throws(() => encodeNodeMessage(gap), (e: unknown) => isFastblockError(e, ErrorCode.INTERNAL));
});

test('entry terms out of order and chunks past the end are PROTOCOL errors', () => {
  const nm = sample();
  const app = nm.messages[0]!;
  const future = { ...nm, messages: [{ ...app, entries: [{ ...app.entries[0]!, term: app.term + 1 }] }] };
  const backwards = { ...nm, messages: [{ ...app, entries: [{ ...app.entries[0]!, term: app.logTerm - 1 }] }] };
  const snap = nm.messages[3]!;
  const past = { ...nm, messages: [{ ...snap, snapshot: { ...snap.snapshot!, offset: 199 } }] };
  for (const bad of [future, backwards, past]) {
    const { header, payload } = encodeNodeMessage(bad);
    assert.throws(() => decodeNodeMessage(header, Buffer.concat(payload)), (e: unknown) => isFastblockError(e, ErrorCode.PROTOCOL));
  }
});

const protobufjs = loadProto('raft.proto').lookupType('fastblock.raft.NodeMessage');
const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value, (_k, v) => (v instanceof Uint8Array ? [...v] : v)));

/** What raft.proto says a node message is, in protobufjs' terms (all fields, as the old encoder wrote them). */
function protoShape(nm: NodeMessage) {
  return {
    from: nm.from,
    to: nm.to,
    messages: nm.messages.map((m) => ({
      type: m.type, group: m.group, from: m.from, to: m.to, term: m.term, logTerm: m.logTerm, index: m.index, commit: m.commit,
      entryTerms: m.entries.map((e) => e.term), entryTypes: m.entries.map((e) => e.type), entryLengths: m.entries.map((e) => e.data.byteLength),
      reject: m.reject, hint: m.hint, hintTerm: m.hintTerm, seq: m.seq, force: m.force,
      snapshot: m.snapshot && { index: m.snapshot.meta.index, term: m.snapshot.meta.term, voters: [...m.snapshot.meta.membership.voters], learners: [...m.snapshot.meta.membership.learners], offset: m.snapshot.offset, total: m.snapshot.total, length: m.snapshot.data.byteLength },
    })),
    beats: nm.beats,
    beatResponses: nm.beatResponses,
  };
}

test('the hand-written header is raft.proto: protobufjs reads what we write, and we read what protobufjs writes', () => {
  const nm = sample();
  const { header, payload } = encodeNodeMessage(nm);
  const read = protobufjs.toObject(protobufjs.decode(header), { defaults: true });
  const expected = protoShape(nm);
  for (const m of expected.messages) if (!m.snapshot) (m as { snapshot?: unknown }).snapshot = null;
  assert.equal(plain(read), plain(expected));
  const theirs = protobufjs.encode(protoShape(nm)).finish();
  assert.equal(plain(decodeNodeMessage(theirs, Buffer.concat(payload))), plain(nm));
});

test('repeated scalars are read packed or one per field, and unknown fields are skipped', () => {
  // messages { type: App(5), group "g", term 3, index 0, entry_terms 3 (unpacked, fixed64), entry_types 0, entry_lengths 2 (unpacked varints) }, then field 99 (varint).
  const term = Buffer.alloc(8);
  term.writeDoubleLE(3);
  const inner = Buffer.concat([Buffer.from([0x08, 5, 0x12, 1, 0x67, 0x29]), term, Buffer.from([0x49]), term, Buffer.from([0x80, 0x01, 0, 0x88, 0x01, 2, 0x98, 0x06, 7])]);
  const header = Buffer.concat([Buffer.from([0x1a, inner.length]), inner]);
  const nm = decodeNodeMessage(header, new Uint8Array([9, 9]));
  assert.is(nm.messages.length, 1);
  assert.equal(nm.messages[0]!.entries.map((e) => ({ index: e.index, term: e.term, type: e.type, data: [...e.data] })), [{ index: 1, term: 3, type: 0, data: [9, 9] }]);
});

test('a header cut short anywhere is a PROTOCOL error, never an exception of another kind', () => {
  const { header, payload } = encodeNodeMessage(sample());
  const tail = Buffer.concat(payload);
  for (let cut = 1; cut < header.length; cut++) {
    try {
      decodeNodeMessage(header.subarray(0, cut), tail);
    } catch (e) {
      assert.ok(isFastblockError(e, ErrorCode.PROTOCOL), `cut at ${cut}: ${String(e)}`);
    }
  }
});

test.run();
