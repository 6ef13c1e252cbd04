/**
 * The raft NodeMessage between two shards of two OSDs, as one one-way frame. The header is a
 * fixed binary layout (it is on the hot path of every replicated write, and its shape is the
 * raft core's, not a public interface); every entry's bytes and every snapshot chunk's bytes
 * travel in the frame's payload tail, in the order they appear, so a proposal's bytes are never
 * re-encoded between the client's frame and the follower's log.
 *
 * Numbers that may exceed 2^32 (terms, indexes) are float64: exact up to 2^53.
 */
import { EntryType, MessageType } from '../../kernel/raft/index.js';
import type { Entry, Membership, Message, NodeMessage, SnapshotChunk } from '../../kernel/raft/index.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

/** One-way method id of raft node messages (the raft service's range, 0x03xx). */
export const RAFT_METHOD_NODE_MESSAGE = 0x03f0;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const VERSION = 1;

class Writer {
  private buffer = new Uint8Array(1024);
  private view = new DataView(this.buffer.buffer);
  at = 0;

  private room(n: number): void {
    if (this.at + n <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.at + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.at));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }
  u8(v: number): void {
    this.room(1);
    this.view.setUint8(this.at, v);
    this.at += 1;
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.at, v, true);
    this.at += 4;
  }
  f64(v: number): void {
    this.room(8);
    this.view.setFloat64(this.at, v, true);
    this.at += 8;
  }
  str(s: string): void {
    const bytes = encoder.encode(s);
    this.u32(bytes.length);
    this.room(bytes.length);
    this.buffer.set(bytes, this.at);
    this.at += bytes.length;
  }
  ids(ids: readonly number[]): void {
    this.u32(ids.length);
    for (const id of ids) this.u32(id);
  }
  finish(): Uint8Array {
    return this.buffer.subarray(0, this.at);
  }
}

class Reader {
  private readonly view: DataView;
  at = 0;
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(n: number): void {
    if (this.at + n > this.bytes.length) throw new FastblockError(ErrorCode.PROTOCOL, 'raft node message header truncated', { at: this.at, length: this.bytes.length });
  }
  u8(): number {
    this.need(1);
    return this.view.getUint8(this.at++);
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }
  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.at, true);
    this.at += 8;
    return v;
  }
  str(): string {
    const n = this.u32();
    this.need(n);
    const s = decoder.decode(this.bytes.subarray(this.at, this.at + n));
    this.at += n;
    return s;
  }
  ids(): number[] {
    const n = this.u32();
    this.need(n * 4);
    return Array.from({ length: n }, () => this.u32());
  }
}

export interface EncodedNodeMessage {
  readonly header: Uint8Array;
  /** Entry and snapshot bytes, in order: sent as the frame's tail without being joined. */
  readonly payload: Uint8Array[];
}

export function encodeNodeMessage(nm: NodeMessage): EncodedNodeMessage {
  const w = new Writer();
  const payload: Uint8Array[] = [];
  w.u8(VERSION);
  w.u32(nm.from);
  w.u32(nm.to);
  w.u32(nm.messages.length);
  for (const m of nm.messages) {
    w.u8(m.type);
    w.str(m.group);
    w.u32(m.from);
    w.u32(m.to);
    w.f64(m.term);
    w.f64(m.logTerm);
    w.f64(m.index);
    w.f64(m.commit);
    w.u8(m.reject ? 1 : 0);
    w.f64(m.hint);
    w.f64(m.hintTerm);
    w.f64(m.seq);
    w.u8(m.force ? 1 : 0);
    w.u32(m.entries.length);
    for (const e of m.entries) {
      w.f64(e.index);
      w.f64(e.term);
      w.u8(e.type);
      w.u32(e.data.length);
      if (e.data.length) payload.push(e.data);
    }
    const s = m.snapshot;
    w.u8(s ? 1 : 0);
    if (s) {
      w.f64(s.meta.index);
      w.f64(s.meta.term);
      w.ids(s.meta.membership.voters);
      w.ids(s.meta.membership.learners);
      w.f64(s.offset);
      w.f64(s.total);
      w.u32(s.data.length);
      if (s.data.length) payload.push(s.data);
    }
  }
  w.u32(nm.beats.length);
  for (const b of nm.beats) {
    w.str(b.group);
    w.f64(b.term);
    w.f64(b.commit);
    w.f64(b.seq);
  }
  w.u32(nm.beatResponses.length);
  for (const r of nm.beatResponses) {
    w.str(r.group);
    w.f64(r.term);
    w.f64(r.seq);
    w.f64(r.index);
  }
  return { header: w.finish(), payload };
}

const EMPTY = new Uint8Array(0);

/**
 * Decodes a node message. `payload` is the frame's tail, a view into the receive buffer: it is
 * copied once here, and every entry's data is a view into that copy (the log keeps them).
 */
export function decodeNodeMessage(header: Uint8Array, payload: Uint8Array): NodeMessage {
  const r = new Reader(header);
  const version = r.u8();
  if (version !== VERSION) throw new FastblockError(ErrorCode.PROTOCOL, `raft node message version ${version}`, { version });
  const tail = payload.length ? payload.slice() : EMPTY;
  let at = 0;
  const take = (n: number): Uint8Array => {
    if (n === 0) return EMPTY;
    if (at + n > tail.length) throw new FastblockError(ErrorCode.PROTOCOL, 'raft node message payload shorter than its entries', { need: at + n, have: tail.length });
    const view = tail.subarray(at, at + n);
    at += n;
    return view;
  };
  const from = r.u32();
  const to = r.u32();
  const messages: Message[] = [];
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const type = r.u8();
    if (type < MessageType.PreVote || type > MessageType.TimeoutNow) throw new FastblockError(ErrorCode.PROTOCOL, `raft message type ${type}`, { type });
    const group = r.str();
    const mFrom = r.u32();
    const mTo = r.u32();
    const term = r.f64();
    const logTerm = r.f64();
    const index = r.f64();
    const commit = r.f64();
    const reject = r.u8() === 1;
    const hint = r.f64();
    const hintTerm = r.f64();
    const seq = r.f64();
    const force = r.u8() === 1;
    const nEntries = r.u32();
    const entries: Entry[] = new Array(nEntries);
    for (let k = 0; k < nEntries; k++) {
      const eIndex = r.f64();
      const eTerm = r.f64();
      const eType = r.u8();
      if (eType !== EntryType.Normal && eType !== EntryType.Membership) throw new FastblockError(ErrorCode.PROTOCOL, `raft entry type ${eType}`, { type: eType });
      entries[k] = { index: eIndex, term: eTerm, type: eType, data: take(r.u32()) };
    }
    let snapshot: SnapshotChunk | undefined;
    if (r.u8() === 1) {
      const sIndex = r.f64();
      const sTerm = r.f64();
      const membership: Membership = { voters: r.ids(), learners: r.ids() };
      const offset = r.f64();
      const total = r.f64();
      snapshot = { meta: { index: sIndex, term: sTerm, membership }, offset, total, data: take(r.u32()) };
    }
    messages.push({ type: type as MessageType, group, from: mFrom, to: mTo, term, logTerm, index, commit, entries, reject, hint, hintTerm, seq, force, snapshot });
  }
  const beats = Array.from({ length: r.u32() }, () => ({ group: r.str(), term: r.f64(), commit: r.f64(), seq: r.f64() }));
  const beatResponses = Array.from({ length: r.u32() }, () => ({ group: r.str(), term: r.f64(), seq: r.f64(), index: r.f64() }));
  return { from, to, messages, beats, beatResponses };
}
