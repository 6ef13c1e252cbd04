/**
 * NodeMessage on the wire (kernel/rpc/raft.proto): a protobuf header plus a payload tail that is
 * the entries' and snapshot chunks' own buffers, listed in order as a scatter list. Encoding
 * never copies a payload; decoding copies the received tail at most once (see ownTail) and every
 * entry's data is a view into it.
 *
 * The header is written and read field by field (kernel/rpc/protobuf-wire.ts), not through protobufjs:
 * sizes first, then one buffer of exactly that size. raft.proto stays the definition;
 * test/raft/codec.test.ts checks both directions against protobufjs. Fields at their proto3
 * default are left out; the reader takes repeated scalars packed or not and skips unknown fields.
 */
import { ErrorCode, FastblockError } from '../../errors.js';
import { MessageType } from '../types.js';
import type { Entry, Message, MessageType as MessageTypeValue, SnapshotChunk } from '../types.js';
import type { Beat, BeatResponse, NodeMessage } from '../node-message.js';
import { WireReader, WireType, WireWriter, delimitedSize, tag, varintSize } from '../../rpc/protobuf-wire.js';

export interface EncodedNodeMessage {
  readonly header: Uint8Array;
  /** The entries' and chunks' own buffers, in order: send without joining (writev). */
  readonly payload: Uint8Array[];
}

// Field numbers of raft.proto.
const NM = { from: 1, to: 2, messages: 3, beats: 4, beatResponses: 5 } as const;
const RM = { type: 1, group: 2, from: 3, to: 4, term: 5, logTerm: 6, index: 7, commit: 8, entryTerms: 9, reject: 10, hint: 11, hintTerm: 12, seq: 13, force: 14, snapshot: 15, entryTypes: 16, entryLengths: 17 } as const;
const CHUNK = { index: 1, term: 2, voters: 3, learners: 4, offset: 5, total: 6, length: 7 } as const;
const BEAT = { group: 1, term: 2, commit: 3, seq: 4 } as const;
const BEAT_RESPONSE = { group: 1, term: 2, seq: 3, index: 4 } as const;

/** What a malformed header's error names. */
const NODE_MESSAGE = 'raft node message';
const EMPTY = new Uint8Array(0);
const NO_ENTRIES: readonly Entry[] = Object.freeze([]);
const utf8 = new TextDecoder();

/** Group ids as UTF-8, encoded once each (a shard hosts a bounded set of groups). */
const groupBytes = new Map<string, Buffer>();
function groupField(group: string): Buffer {
  let bytes = groupBytes.get(group);
  if (bytes === undefined) {
    if (groupBytes.size >= 65_536) groupBytes.clear();
    bytes = Buffer.from(group, 'utf8');
    groupBytes.set(group, bytes);
  }
  return bytes;
}

const varintFieldSize = (field: number, value: number): number => (value === 0 ? 0 : varintSize(tag(field, WireType.VARINT)) + varintSize(value));
const doubleFieldSize = (field: number, value: number): number => (value === 0 ? 0 : varintSize(tag(field, WireType.FIXED64)) + 8);
const stringFieldSize = (field: number, bytes: Uint8Array): number => (bytes.byteLength === 0 ? 0 : delimitedSize(field, bytes.byteLength));

function packedVarintsSize(values: readonly number[]): number {
  let size = 0;
  for (let i = 0; i < values.length; i++) size += varintSize(values[i]!);
  return size;
}

function chunkSize(s: SnapshotChunk): number {
  const voters = packedVarintsSize(s.meta.membership.voters);
  const learners = packedVarintsSize(s.meta.membership.learners);
  return (
    doubleFieldSize(CHUNK.index, s.meta.index) +
    doubleFieldSize(CHUNK.term, s.meta.term) +
    (voters === 0 ? 0 : delimitedSize(CHUNK.voters, voters)) +
    (learners === 0 ? 0 : delimitedSize(CHUNK.learners, learners)) +
    doubleFieldSize(CHUNK.offset, s.offset) +
    doubleFieldSize(CHUNK.total, s.total) +
    varintFieldSize(CHUNK.length, s.data.byteLength)
  );
}

/** Sizes of one raft message's parts, computed once and used again to write it. */
interface Sized {
  readonly group: Buffer;
  readonly types: number;
  readonly lengths: number;
  readonly chunk: number;
  readonly total: number;
}

function sizeMessage(m: Message): Sized {
  const group = groupField(m.group);
  const n = m.entries.length;
  let types = 0;
  let lengths = 0;
  for (let i = 0; i < n; i++) {
    const e = m.entries[i]!;
    // Entries are consecutive from index + 1: their indexes need not travel.
    if (e.index !== m.index + 1 + i) throw new FastblockError(ErrorCode.INTERNAL, 'raft entries out of sequence', { group: m.group, prev: m.index, index: e.index });
    types += varintSize(e.type);
    lengths += varintSize(e.data.byteLength);
  }
  const chunk = m.snapshot ? chunkSize(m.snapshot) : 0;
  const total =
    varintFieldSize(RM.type, m.type) +
    stringFieldSize(RM.group, group) +
    varintFieldSize(RM.from, m.from) +
    varintFieldSize(RM.to, m.to) +
    doubleFieldSize(RM.term, m.term) +
    doubleFieldSize(RM.logTerm, m.logTerm) +
    doubleFieldSize(RM.index, m.index) +
    doubleFieldSize(RM.commit, m.commit) +
    (n === 0 ? 0 : delimitedSize(RM.entryTerms, 8 * n) + delimitedSize(RM.entryTypes, types) + delimitedSize(RM.entryLengths, lengths)) +
    (m.reject ? 2 : 0) +
    doubleFieldSize(RM.hint, m.hint) +
    doubleFieldSize(RM.hintTerm, m.hintTerm) +
    doubleFieldSize(RM.seq, m.seq) +
    (m.force ? 2 : 0) +
    (m.snapshot ? delimitedSize(RM.snapshot, chunk) : 0);
  return { group, types, lengths, chunk, total };
}

function writeMessage(w: WireWriter, m: Message, sized: Sized, payload: Uint8Array[]): void {
  w.delimited(NM.messages, sized.total);
  w.varintField(RM.type, m.type);
  if (sized.group.byteLength > 0) {
    w.delimited(RM.group, sized.group.byteLength);
    w.bytes(sized.group);
  }
  w.varintField(RM.from, m.from);
  w.varintField(RM.to, m.to);
  w.doubleField(RM.term, m.term);
  w.doubleField(RM.logTerm, m.logTerm);
  w.doubleField(RM.index, m.index);
  w.doubleField(RM.commit, m.commit);
  const entries = m.entries;
  if (entries.length > 0) {
    w.delimited(RM.entryTerms, 8 * entries.length);
    for (let i = 0; i < entries.length; i++) w.double(entries[i]!.term);
  }
  if (m.reject) w.varintField(RM.reject, 1);
  w.doubleField(RM.hint, m.hint);
  w.doubleField(RM.hintTerm, m.hintTerm);
  w.doubleField(RM.seq, m.seq);
  if (m.force) w.varintField(RM.force, 1);
  const s = m.snapshot;
  if (s) {
    w.delimited(RM.snapshot, sized.chunk);
    w.doubleField(CHUNK.index, s.meta.index);
    w.doubleField(CHUNK.term, s.meta.term);
    writePacked(w, CHUNK.voters, s.meta.membership.voters);
    writePacked(w, CHUNK.learners, s.meta.membership.learners);
    w.doubleField(CHUNK.offset, s.offset);
    w.doubleField(CHUNK.total, s.total);
    w.varintField(CHUNK.length, s.data.byteLength);
  }
  if (entries.length > 0) {
    w.delimited(RM.entryTypes, sized.types);
    for (let i = 0; i < entries.length; i++) w.varint(entries[i]!.type);
    w.delimited(RM.entryLengths, sized.lengths);
    for (let i = 0; i < entries.length; i++) {
      const data = entries[i]!.data;
      w.varint(data.byteLength);
      if (data.byteLength > 0) payload.push(data);
    }
  }
  if (s && s.data.byteLength > 0) payload.push(s.data);
}

function writePacked(w: WireWriter, field: number, values: readonly number[]): void {
  const size = packedVarintsSize(values);
  if (size === 0) return;
  w.delimited(field, size);
  for (let i = 0; i < values.length; i++) w.varint(values[i]!);
}

const beatSize = (b: Beat | BeatResponse, third: number, fourth: number): number =>
  stringFieldSize(1, groupField(b.group)) + doubleFieldSize(2, b.term) + doubleFieldSize(3, third) + doubleFieldSize(4, fourth);

function writeBeat(w: WireWriter, field: number, group: string, term: number, third: number, fourth: number): void {
  const g = groupField(group);
  w.delimited(field, stringFieldSize(1, g) + doubleFieldSize(2, term) + doubleFieldSize(3, third) + doubleFieldSize(4, fourth));
  if (g.byteLength > 0) {
    w.delimited(1, g.byteLength);
    w.bytes(g);
  }
  w.doubleField(2, term);
  w.doubleField(3, third);
  w.doubleField(4, fourth);
}

export function encodeNodeMessage(nm: NodeMessage): EncodedNodeMessage {
  const sized = new Array<Sized>(nm.messages.length);
  let total = varintFieldSize(NM.from, nm.from) + varintFieldSize(NM.to, nm.to);
  for (let i = 0; i < nm.messages.length; i++) {
    const s = (sized[i] = sizeMessage(nm.messages[i]!));
    total += delimitedSize(NM.messages, s.total);
  }
  for (const b of nm.beats) total += delimitedSize(NM.beats, beatSize(b, b.commit, b.seq));
  for (const r of nm.beatResponses) total += delimitedSize(NM.beatResponses, beatSize(r, r.seq, r.index));
  const w = new WireWriter(Buffer.allocUnsafe(total));
  const payload: Uint8Array[] = [];
  w.varintField(NM.from, nm.from);
  w.varintField(NM.to, nm.to);
  for (let i = 0; i < nm.messages.length; i++) writeMessage(w, nm.messages[i]!, sized[i]!, payload);
  for (const b of nm.beats) writeBeat(w, NM.beats, b.group, b.term, b.commit, b.seq);
  for (const r of nm.beatResponses) writeBeat(w, NM.beatResponses, r.group, r.term, r.seq, r.index);
  if (w.at !== total) throw new FastblockError(ErrorCode.INTERNAL, 'raft node message size mismatch', { computed: total, written: w.at });
  return { header: w.out, payload };
}

// ---- decoding ---------------------------------------------------------------------------------
//
// One reader walks the whole header: a nested message is read up to its end with the same reader
// (no reader, view or header object per message), and each raft message is built as soon as it
// is read, its entries viewing the payload tail in order.

function protocol(reason: string, context: Record<string, unknown> = {}): FastblockError {
  return new FastblockError(ErrorCode.PROTOCOL, reason, context);
}

/** The end of a nested message; the reader must stop exactly there. */
function nestedEnd(r: WireReader, wireType: number, what: string): number {
  if (wireType !== WireType.BYTES) throw protocol(`malformed raft node message: ${what} of wire type ${wireType}`);
  return r.delimitedEnd();
}

function checkEnd(r: WireReader, end: number, what: string): void {
  if (r.at !== end) throw protocol(`malformed raft node message: ${what} overruns its length`, { at: r.at, end });
}

/** Reads a repeated scalar field, packed (one length-delimited run) or one element per field. */
/** A repeated varint field appended to a list of its own (snapshot chunks: rare). */
function readRepeatedList(r: WireReader, wireType: number, into: number[]): void {
  const scratch: Scratch = { values: into, n: into.length };
  readRepeated(r, wireType, scratch, false);
}

/** A repeated scalar field decoded into a reused array: values[0..n) (never shrunk, so never reallocated). */
interface Scratch {
  readonly values: number[];
  n: number;
}

function readRepeated(r: WireReader, wireType: number, into: Scratch, double: boolean): void {
  const values = into.values;
  if (wireType === (double ? WireType.FIXED64 : WireType.VARINT)) {
    values[into.n++] = double ? r.double() : r.varint();
    return;
  }
  if (wireType !== WireType.BYTES) throw protocol(`malformed raft node message: repeated field of wire type ${wireType}`);
  const end = r.delimitedEnd();
  let n = into.n;
  while (r.at < end) values[n++] = double ? r.double() : r.varint();
  into.n = n;
  checkEnd(r, end, 'repeated field');
}

/**
 * Group ids as received, decoded once each: a shard hosts a bounded set of groups, and the same
 * few ids arrive in every message. Keyed by a hash of the bytes, checked byte for byte.
 */
const groupNames = new Map<number, { readonly bytes: Uint8Array; readonly name: string }[]>();
let groupNameCount = 0;

function readGroup(r: WireReader, wireType: number): string {
  if (wireType !== WireType.BYTES) throw protocol(`malformed raft node message: string of wire type ${wireType}`);
  const end = r.delimitedEnd();
  const bytes = r.bytes;
  let hash = 0x811c9dc5;
  for (let i = r.at; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  const length = end - r.at;
  const candidates = groupNames.get(hash);
  if (candidates !== undefined) {
    for (const c of candidates) {
      if (c.bytes.byteLength !== length) continue;
      let same = true;
      for (let i = 0; i < length && same; i++) same = c.bytes[i] === bytes[r.at + i];
      if (same) {
        r.at = end;
        return c.name;
      }
    }
  }
  const copy = bytes.slice(r.at, end);
  const name = utf8.decode(copy);
  if (groupNameCount >= 65_536) {
    groupNames.clear();
    groupNameCount = 0;
  }
  groupNameCount++;
  if (candidates === undefined) groupNames.set(hash, [{ bytes: copy, name }]);
  else candidates.push({ bytes: copy, name });
  r.at = end;
  return name;
}

/** A scalar field: checks its wire type, reads it. */
function readDouble(r: WireReader, wireType: number): number {
  if (wireType !== WireType.FIXED64) throw protocol(`malformed raft node message: double of wire type ${wireType}`);
  return r.double();
}

function readVarint(r: WireReader, wireType: number): number {
  if (wireType !== WireType.VARINT) throw protocol(`malformed raft node message: varint of wire type ${wireType}`);
  return r.varint();
}

/** The payload tail, handed out in order: entries' data and snapshot chunks view it. */
class Tail {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}

  take(n: number): Uint8Array {
    if (n === 0) return EMPTY;
    if (this.at + n > this.bytes.byteLength) throw protocol('raft payload tail shorter than its header says', { need: this.at + n, have: this.bytes.byteLength });
    const view = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return view;
  }
}

interface ChunkHeader {
  index: number;
  term: number;
  voters: number[];
  learners: number[];
  offset: number;
  total: number;
  length: number;
}

function readChunk(r: WireReader, end: number): ChunkHeader {
  const c: ChunkHeader = { index: 0, term: 0, voters: [], learners: [], offset: 0, total: 0, length: 0 };
  while (r.at < end) {
    const k = r.varint();
    const wt = k & 7;
    switch (k >>> 3) {
      case CHUNK.index: c.index = readDouble(r, wt); break;
      case CHUNK.term: c.term = readDouble(r, wt); break;
      case CHUNK.voters: readRepeatedList(r, wt, c.voters); break;
      case CHUNK.learners: readRepeatedList(r, wt, c.learners); break;
      case CHUNK.offset: c.offset = readDouble(r, wt); break;
      case CHUNK.total: c.total = readDouble(r, wt); break;
      case CHUNK.length: c.length = readVarint(r, wt); break;
      default: r.skip(wt);
    }
  }
  checkEnd(r, end, 'snapshot chunk');
  return c;
}

// Scratch for one message's entry fields: filled, then turned into entries before the next.
const entryTerms: Scratch = { values: [], n: 0 };
const entryTypes: Scratch = { values: [], n: 0 };
const entryLengths: Scratch = { values: [], n: 0 };

function readRaftMessage(r: WireReader, end: number, tail: Tail): Message {
  let type = 0;
  let group = '';
  let from = 0;
  let to = 0;
  let term = 0;
  let logTerm = 0;
  let index = 0;
  let commit = 0;
  let reject = false;
  let hint = 0;
  let hintTerm = 0;
  let seq = 0;
  let force = false;
  let chunk: ChunkHeader | undefined;
  entryTerms.n = 0;
  entryTypes.n = 0;
  entryLengths.n = 0;
  while (r.at < end) {
    const k = r.varint();
    const wt = k & 7;
    switch (k >>> 3) {
      case RM.type: type = readVarint(r, wt); break;
      case RM.group: group = readGroup(r, wt); break;
      case RM.from: from = readVarint(r, wt); break;
      case RM.to: to = readVarint(r, wt); break;
      case RM.term: term = readDouble(r, wt); break;
      case RM.logTerm: logTerm = readDouble(r, wt); break;
      case RM.index: index = readDouble(r, wt); break;
      case RM.commit: commit = readDouble(r, wt); break;
      case RM.entryTerms: readRepeated(r, wt, entryTerms, true); break;
      case RM.entryTypes: readRepeated(r, wt, entryTypes, false); break;
      case RM.entryLengths: readRepeated(r, wt, entryLengths, false); break;
      case RM.reject: reject = readVarint(r, wt) !== 0; break;
      case RM.hint: hint = readDouble(r, wt); break;
      case RM.hintTerm: hintTerm = readDouble(r, wt); break;
      case RM.seq: seq = readDouble(r, wt); break;
      case RM.force: force = readVarint(r, wt) !== 0; break;
      case RM.snapshot: {
        chunk = readChunk(r, nestedEnd(r, wt, 'snapshot'));
        break;
      }
      default: r.skip(wt);
    }
  }
  checkEnd(r, end, 'raft message');
  if (type < MessageType.PreVote || type > MessageType.TimeoutNow) throw protocol(`unknown raft message type ${type}`, { type });
  const n = entryTerms.n;
  if (entryTypes.n !== n || entryLengths.n !== n) {
    throw protocol('raft entry arrays of different lengths', { group, terms: n, types: entryTypes.n, lengths: entryLengths.n });
  }
  let entries: readonly Entry[] = NO_ENTRIES;
  if (n > 0) {
    const list = new Array<Entry>(n);
    let prevTerm = logTerm;
    for (let i = 0; i < n; i++) {
      const t = entryTerms.values[i]!;
      const ty = entryTypes.values[i]!;
      // The core asserts these invariants; from the wire they are checked, not trusted.
      if (t < prevTerm || t > term || ty > 255) throw protocol('raft entry terms out of order', { group, index: index + 1 + i, term: t, type: ty });
      prevTerm = t;
      list[i] = { index: index + 1 + i, term: t, type: ty, data: tail.take(entryLengths.values[i]!) };
    }
    entries = list;
  }
  let snapshot: SnapshotChunk | undefined;
  if (chunk !== undefined) {
    if (chunk.offset + chunk.length > chunk.total) throw protocol('snapshot chunk past the snapshot end', { group, offset: chunk.offset, length: chunk.length, total: chunk.total });
    // A chunk's data follows the message's entries in the tail.
    snapshot = { meta: { index: chunk.index, term: chunk.term, membership: { voters: chunk.voters, learners: chunk.learners } }, offset: chunk.offset, total: chunk.total, data: tail.take(chunk.length) };
  }
  return { type: type as MessageTypeValue, group, from, to, term, logTerm, index, commit, entries, reject, hint, hintTerm, seq, force, snapshot };
}
/**
 * The bytes entries will view. A view keeps its whole buffer alive, and entries stay in a log's
 * memory until compaction: a tail that shares a receive slab with other frames is copied once
 * (new Uint8Array(view) copies), while a tail that is most of its buffer (a large frame read into
 * a buffer of its own) is kept as it is, which spares a copy of every large write on every
 * follower and the garbage collections that external-memory churn starts. A borrowed tail (the
 * transport reuses its bytes once the handler returns) is always copied.
 */
function ownTail(tail: Uint8Array, borrowed: boolean): Uint8Array {
  // A plain Uint8Array either way (a Buffer's subarrays would be Buffers).
  if (!borrowed && tail.byteLength * 2 >= tail.buffer.byteLength) return new Uint8Array(tail.buffer, tail.byteOffset, tail.byteLength);
  return new Uint8Array(tail);
}

/**
 * Decodes a node message; throws PROTOCOL on a malformed header or a tail that does not match it.
 * `borrowed`: the caller's bytes are reused once it returns (a one-way message the handler
 * borrows): nothing decoded views them.
 */
export function decodeNodeMessage(headerBytes: Uint8Array, payload: Uint8Array, borrowed = false): NodeMessage {
  let from = 0;
  let to = 0;
  const messages: Message[] = [];
  const beats: Beat[] = [];
  const beatResponses: BeatResponse[] = [];
  const tail = new Tail(payload.byteLength === 0 ? EMPTY : ownTail(payload, borrowed));
  const r = new WireReader(headerBytes, NODE_MESSAGE);
  while (!r.done) {
    const k = r.varint();
    const wt = k & 7;
    switch (k >>> 3) {
      case NM.from: from = readVarint(r, wt); break;
      case NM.to: to = readVarint(r, wt); break;
      case NM.messages: messages.push(readRaftMessage(r, nestedEnd(r, wt, 'raft message'), tail)); break;
      case NM.beats: {
        const end = nestedEnd(r, wt, 'heartbeat');
        readBeat(r, end);
        beats.push({ group: beat.group, term: beat.term, commit: beat.third, seq: beat.fourth });
        break;
      }
      case NM.beatResponses: {
        const end = nestedEnd(r, wt, 'heartbeat response');
        readBeat(r, end);
        beatResponses.push({ group: beat.group, term: beat.term, seq: beat.third, index: beat.fourth });
        break;
      }
      default: r.skip(wt);
    }
  }
  if (tail.at !== tail.bytes.byteLength) throw protocol('raft payload tail longer than its header says', { used: tail.at, have: tail.bytes.byteLength });
  return { from, to, messages, beats, beatResponses };
}

/** One heartbeat or response as read (scratch: copied into its Beat or BeatResponse at once). */
const beat = { group: '', term: 0, third: 0, fourth: 0 };

function readBeat(r: WireReader, end: number): void {
  beat.group = '';
  beat.term = beat.third = beat.fourth = 0;
  while (r.at < end) {
    const k = r.varint();
    const wt = k & 7;
    switch (k >>> 3) {
      case 1: beat.group = readGroup(r, wt); break;
      case 2: beat.term = readDouble(r, wt); break;
      case 3: beat.third = readDouble(r, wt); break;
      case 4: beat.fourth = readDouble(r, wt); break;
      default: r.skip(wt);
    }
  }
  checkEnd(r, end, 'heartbeat');
}
