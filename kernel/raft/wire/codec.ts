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
import { MessageType, message } from '../types.js';
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

function protocol(reason: string, context: Record<string, unknown> = {}): FastblockError {
  return new FastblockError(ErrorCode.PROTOCOL, reason, context);
}

/** Reads a repeated scalar field, packed (one length-delimited run) or one element per field. */
function readRepeated(r: WireReader, wireType: number, into: number[], element: 'double' | 'varint'): void {
  const scalarType = element === 'double' ? WireType.FIXED64 : WireType.VARINT;
  if (wireType === scalarType) {
    into.push(element === 'double' ? r.double() : r.varint());
    return;
  }
  if (wireType !== WireType.BYTES) throw protocol(`malformed raft node message: repeated field of wire type ${wireType}`);
  const end = r.delimitedEnd();
  const inner = new WireReader(r.bytes, NODE_MESSAGE, r.at, end);
  while (!inner.done) into.push(element === 'double' ? inner.double() : inner.varint());
  r.at = end;
}

function readString(r: WireReader, wireType: number): string {
  if (wireType !== WireType.BYTES) throw protocol(`malformed raft node message: string of wire type ${wireType}`);
  const end = r.delimitedEnd();
  const value = utf8.decode(r.bytes.subarray(r.at, end));
  r.at = end;
  return value;
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
  const inner = new WireReader(r.bytes, NODE_MESSAGE, r.at, end);
  while (!inner.done) {
    const k = inner.varint();
    const wt = k & 7;
    switch (k >>> 3) {
      case CHUNK.index: c.index = readDouble(inner, wt); break;
      case CHUNK.term: c.term = readDouble(inner, wt); break;
      case CHUNK.voters: readRepeated(inner, wt, c.voters, 'varint'); break;
      case CHUNK.learners: readRepeated(inner, wt, c.learners, 'varint'); break;
      case CHUNK.offset: c.offset = readDouble(inner, wt); break;
      case CHUNK.total: c.total = readDouble(inner, wt); break;
      case CHUNK.length: c.length = readVarint(inner, wt); break;
      default: inner.skip(wt);
    }
  }
  r.at = end;
  return c;
}

/** A raft message header, its entries' terms, types and lengths still apart. */
interface RaftMessageHeader {
  type: number;
  group: string;
  from: number;
  to: number;
  term: number;
  logTerm: number;
  index: number;
  commit: number;
  entryTerms: number[];
  entryTypes: number[];
  entryLengths: number[];
  reject: boolean;
  hint: number;
  hintTerm: number;
  seq: number;
  force: boolean;
  snapshot: ChunkHeader | undefined;
}

function readRaftMessage(r: WireReader, end: number): RaftMessageHeader {
  const m: RaftMessageHeader = { type: 0, group: '', from: 0, to: 0, term: 0, logTerm: 0, index: 0, commit: 0, entryTerms: [], entryTypes: [], entryLengths: [], reject: false, hint: 0, hintTerm: 0, seq: 0, force: false, snapshot: undefined };
  const inner = new WireReader(r.bytes, NODE_MESSAGE, r.at, end);
  while (!inner.done) {
    const k = inner.varint();
    const wt = k & 7;
    switch (k >>> 3) {
      case RM.type: m.type = readVarint(inner, wt); break;
      case RM.group: m.group = readString(inner, wt); break;
      case RM.from: m.from = readVarint(inner, wt); break;
      case RM.to: m.to = readVarint(inner, wt); break;
      case RM.term: m.term = readDouble(inner, wt); break;
      case RM.logTerm: m.logTerm = readDouble(inner, wt); break;
      case RM.index: m.index = readDouble(inner, wt); break;
      case RM.commit: m.commit = readDouble(inner, wt); break;
      case RM.entryTerms: readRepeated(inner, wt, m.entryTerms, 'double'); break;
      case RM.entryTypes: readRepeated(inner, wt, m.entryTypes, 'varint'); break;
      case RM.entryLengths: readRepeated(inner, wt, m.entryLengths, 'varint'); break;
      case RM.reject: m.reject = readVarint(inner, wt) !== 0; break;
      case RM.hint: m.hint = readDouble(inner, wt); break;
      case RM.hintTerm: m.hintTerm = readDouble(inner, wt); break;
      case RM.seq: m.seq = readDouble(inner, wt); break;
      case RM.force: m.force = readVarint(inner, wt) !== 0; break;
      case RM.snapshot: {
        if (wt !== WireType.BYTES) throw protocol(`malformed raft node message: snapshot of wire type ${wt}`);
        const chunkEnd = inner.delimitedEnd();
        m.snapshot = readChunk(inner, chunkEnd);
        break;
      }
      default: inner.skip(wt);
    }
  }
  r.at = end;
  return m;
}

function readBeat(r: WireReader, end: number): { group: string; term: number; third: number; fourth: number } {
  const b = { group: '', term: 0, third: 0, fourth: 0 };
  const inner = new WireReader(r.bytes, NODE_MESSAGE, r.at, end);
  while (!inner.done) {
    const k = inner.varint();
    const wt = k & 7;
    switch (k >>> 3) {
      case 1: b.group = readString(inner, wt); break;
      case 2: b.term = readDouble(inner, wt); break;
      case 3: b.third = readDouble(inner, wt); break;
      case 4: b.fourth = readDouble(inner, wt); break;
      default: inner.skip(wt);
    }
  }
  r.at = end;
  return b;
}

/**
 * The bytes entries will view. Received bytes are never reused (transport contract), but a view
 * keeps its whole buffer alive, and entries stay in a log's memory until compaction: a tail that
 * shares a receive slab with other frames is copied once (new Uint8Array(view) copies), while a
 * tail that is most of its buffer (a large frame read into a buffer of its own) is kept as it is,
 * which spares a copy of every large write on every follower and the garbage collections that
 * external-memory churn starts.
 */
function ownTail(tail: Uint8Array): Uint8Array {
  // A plain Uint8Array either way (a Buffer's subarrays would be Buffers).
  if (tail.byteLength * 2 >= tail.buffer.byteLength) return new Uint8Array(tail.buffer, tail.byteOffset, tail.byteLength);
  return new Uint8Array(tail);
}

/** Decodes a node message; throws PROTOCOL on a malformed header or a tail that does not match it. */
export function decodeNodeMessage(headerBytes: Uint8Array, tail: Uint8Array): NodeMessage {
  let from = 0;
  let to = 0;
  const headers: RaftMessageHeader[] = [];
  const beats: Beat[] = [];
  const beatResponses: BeatResponse[] = [];
  const r = new WireReader(headerBytes, NODE_MESSAGE);
  while (!r.done) {
    const k = r.varint();
    const wt = k & 7;
    switch (k >>> 3) {
      case NM.from: from = readVarint(r, wt); break;
      case NM.to: to = readVarint(r, wt); break;
      case NM.messages:
      case NM.beats:
      case NM.beatResponses: {
        if (wt !== WireType.BYTES) throw protocol(`malformed raft node message: field ${k >>> 3} of wire type ${wt}`);
        const end = r.delimitedEnd();
        if (k >>> 3 === NM.messages) headers.push(readRaftMessage(r, end));
        else {
          const b = readBeat(r, end);
          if (k >>> 3 === NM.beats) beats.push({ group: b.group, term: b.term, commit: b.third, seq: b.fourth });
          else beatResponses.push({ group: b.group, term: b.term, seq: b.third, index: b.fourth });
        }
        break;
      }
      default: r.skip(wt);
    }
  }
  const owned = tail.byteLength === 0 ? EMPTY : ownTail(tail);
  let at = 0;
  const take = (n: number): Uint8Array => {
    if (n === 0) return EMPTY;
    if (at + n > owned.byteLength) throw protocol('raft payload tail shorter than its header says', { need: at + n, have: owned.byteLength });
    const view = owned.subarray(at, at + n);
    at += n;
    return view;
  };
  const messages = new Array<Message>(headers.length);
  for (let h = 0; h < headers.length; h++) {
    const m = headers[h]!;
    if (m.type < MessageType.PreVote || m.type > MessageType.TimeoutNow) throw protocol(`unknown raft message type ${m.type}`, { type: m.type });
    const n = m.entryTerms.length;
    if (m.entryTypes.length !== n || m.entryLengths.length !== n) {
      throw protocol('raft entry arrays of different lengths', { group: m.group, terms: n, types: m.entryTypes.length, lengths: m.entryLengths.length });
    }
    const entries = new Array<Entry>(n);
    let prevTerm = m.logTerm;
    for (let i = 0; i < n; i++) {
      const term = m.entryTerms[i]!;
      const type = m.entryTypes[i]!;
      // The core asserts these invariants; from the wire they are checked, not trusted.
      if (term < prevTerm || term > m.term || type > 255) throw protocol('raft entry terms out of order', { group: m.group, index: m.index + 1 + i, term, type });
      prevTerm = term;
      entries[i] = { index: m.index + 1 + i, term, type, data: take(m.entryLengths[i]!) };
    }
    let snapshot: SnapshotChunk | undefined;
    if (m.snapshot) {
      const s = m.snapshot;
      if (s.offset + s.length > s.total) throw protocol('snapshot chunk past the snapshot end', { group: m.group, offset: s.offset, length: s.length, total: s.total });
      snapshot = { meta: { index: s.index, term: s.term, membership: { voters: s.voters, learners: s.learners } }, offset: s.offset, total: s.total, data: take(s.length) };
    }
    messages[h] = message({
      type: m.type as MessageTypeValue,
      group: m.group,
      from: m.from,
      to: m.to,
      term: m.term,
      logTerm: m.logTerm,
      index: m.index,
      commit: m.commit,
      entries,
      reject: m.reject,
      hint: m.hint,
      hintTerm: m.hintTerm,
      seq: m.seq,
      force: m.force,
      snapshot,
    });
  }
  if (at !== owned.byteLength) throw protocol('raft payload tail longer than its header says', { used: at, have: owned.byteLength });
  return { from, to, messages, beats, beatResponses };
}
