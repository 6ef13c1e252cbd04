/**
 * NodeMessage on the wire (kernel/rpc/raft.proto): a protobuf header plus a payload tail that is
 * the entries' and snapshot chunks' own buffers, listed in order as a scatter list. Encoding
 * never copies a payload; decoding copies the received tail once (the transport's receive
 * buffer is reused after the handler returns) and every entry's data is a view into that copy.
 */
import { ErrorCode, FastblockError } from '../../errors.js';
import type protobuf from 'protobufjs';
import { loadProto } from '../../rpc/proto.js';
import { MessageType, message } from '../types.js';
import type { Entry, Message, MessageType as MessageTypeValue, SnapshotChunk } from '../types.js';
import type { NodeMessage } from '../node-message.js';

interface ChunkHeader {
  index: number;
  term: number;
  voters: number[];
  learners: number[];
  offset: number;
  total: number;
  length: number;
}

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
  snapshot?: ChunkHeader | null;
}

interface NodeMessageHeader {
  from: number;
  to: number;
  messages: RaftMessageHeader[];
  beats: { group: string; term: number; commit: number; seq: number }[];
  beatResponses: { group: string; term: number; seq: number; index: number }[];
}

export interface EncodedNodeMessage {
  readonly header: Uint8Array;
  /** The entries' and chunks' own buffers, in order: send without joining (writev). */
  readonly payload: Uint8Array[];
}

let headerType: protobuf.Type | undefined;

/** The generated protobufjs type, used directly: decoded fields are read off the message object, no toObject pass. */
function nodeMessageType(): protobuf.Type {
  headerType ??= loadProto('raft.proto').lookupType('fastblock.raft.NodeMessage');
  return headerType;
}

const EMPTY = new Uint8Array(0);

export function encodeNodeMessage(nm: NodeMessage): EncodedNodeMessage {
  const payload: Uint8Array[] = [];
  const messages: RaftMessageHeader[] = nm.messages.map((m) => {
    const n = m.entries.length;
    const entryTerms = new Array<number>(n);
    const entryTypes = new Array<number>(n);
    const entryLengths = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const e = m.entries[i]!;
      // Entries are consecutive from index + 1: their indexes need not travel.
      if (e.index !== m.index + 1 + i) throw new FastblockError(ErrorCode.INTERNAL, 'raft entries out of sequence', { group: m.group, prev: m.index, index: e.index });
      entryTerms[i] = e.term;
      entryTypes[i] = e.type;
      entryLengths[i] = e.data.byteLength;
      if (e.data.byteLength > 0) payload.push(e.data);
    }
    let snapshot: ChunkHeader | null = null;
    if (m.snapshot) {
      const s = m.snapshot;
      snapshot = {
        index: s.meta.index,
        term: s.meta.term,
        voters: [...s.meta.membership.voters],
        learners: [...s.meta.membership.learners],
        offset: s.offset,
        total: s.total,
        length: s.data.byteLength,
      };
      if (s.data.byteLength > 0) payload.push(s.data);
    }
    return {
      type: m.type,
      group: m.group,
      from: m.from,
      to: m.to,
      term: m.term,
      logTerm: m.logTerm,
      index: m.index,
      commit: m.commit,
      entryTerms,
      entryTypes,
      entryLengths,
      reject: m.reject,
      hint: m.hint,
      hintTerm: m.hintTerm,
      seq: m.seq,
      force: m.force,
      snapshot,
    };
  });
  const header = nodeMessageType().encode({ from: nm.from, to: nm.to, messages, beats: nm.beats, beatResponses: nm.beatResponses }).finish();
  return { header, payload };
}

/** Decodes a node message; throws PROTOCOL on a malformed header or a tail that does not match it. */
export function decodeNodeMessage(headerBytes: Uint8Array, tail: Uint8Array): NodeMessage {
  let h: NodeMessageHeader;
  try {
    h = nodeMessageType().decode(headerBytes) as unknown as NodeMessageHeader;
  } catch (err) {
    throw new FastblockError(ErrorCode.PROTOCOL, `malformed raft node message: ${(err as Error).message}`, { bytes: headerBytes.byteLength });
  }
  // new Uint8Array(view) copies (Buffer#slice would not).
  const owned = tail.byteLength > 0 ? new Uint8Array(tail) : EMPTY;
  let at = 0;
  const take = (n: number): Uint8Array => {
    if (n === 0) return EMPTY;
    if (at + n > owned.byteLength) {
      throw new FastblockError(ErrorCode.PROTOCOL, 'raft payload tail shorter than its header says', { need: at + n, have: owned.byteLength });
    }
    const view = owned.subarray(at, at + n);
    at += n;
    return view;
  };
  const messages: Message[] = h.messages.map((m) => {
    if (m.type < MessageType.PreVote || m.type > MessageType.TimeoutNow) {
      throw new FastblockError(ErrorCode.PROTOCOL, `unknown raft message type ${m.type}`, { type: m.type });
    }
    const n = m.entryTerms.length;
    if (m.entryTypes.length !== n || m.entryLengths.length !== n) {
      throw new FastblockError(ErrorCode.PROTOCOL, 'raft entry arrays of different lengths', { group: m.group, terms: n, types: m.entryTypes.length, lengths: m.entryLengths.length });
    }
    const entries = new Array<Entry>(n);
    let prevTerm = m.logTerm;
    for (let i = 0; i < n; i++) {
      const term = m.entryTerms[i]!;
      const type = m.entryTypes[i]!;
      // The core asserts these invariants; from the wire they are checked, not trusted.
      if (term < prevTerm || term > m.term || type > 255) {
        throw new FastblockError(ErrorCode.PROTOCOL, 'raft entry terms out of order', { group: m.group, index: m.index + 1 + i, term, type });
      }
      prevTerm = term;
      entries[i] = { index: m.index + 1 + i, term, type, data: take(m.entryLengths[i]!) };
    }
    let snapshot: SnapshotChunk | undefined;
    if (m.snapshot) {
      const s = m.snapshot;
      if (s.offset + s.length > s.total) {
        throw new FastblockError(ErrorCode.PROTOCOL, 'snapshot chunk past the snapshot end', { group: m.group, offset: s.offset, length: s.length, total: s.total });
      }
      snapshot = {
        meta: { index: s.index, term: s.term, membership: { voters: s.voters, learners: s.learners } },
        offset: s.offset,
        total: s.total,
        data: take(s.length),
      };
    }
    return message({
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
  });
  if (at !== owned.byteLength) {
    throw new FastblockError(ErrorCode.PROTOCOL, 'raft payload tail longer than its header says', { used: at, have: owned.byteLength });
  }
  return { from: h.from, to: h.to, messages, beats: h.beats, beatResponses: h.beatResponses };
}
