/**
 * NodeMessage on the wire (kernel/rpc/raft.proto): a protobuf header plus a payload tail that is
 * the entries' and snapshot chunks' own buffers, listed in order as a scatter list. Encoding
 * never copies a payload; decoding copies the received tail once (the transport's receive
 * buffer is reused after the handler returns) and every entry's data is a view into that copy.
 */
import { ErrorCode, FastblockError } from '../../errors.js';
import { loadProto, messageCodec } from '../../rpc/proto.js';
import type { MessageCodec } from '../../rpc/proto.js';
import { MessageType, message } from '../types.js';
import type { Entry, Message, MessageType as MessageTypeValue, SnapshotChunk } from '../types.js';
import type { NodeMessage } from '../node-message.js';

interface EntryHeader {
  index: number;
  term: number;
  type: number;
  length: number;
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

interface RaftMessageHeader {
  type: number;
  group: string;
  from: number;
  to: number;
  term: number;
  logTerm: number;
  index: number;
  commit: number;
  entries: EntryHeader[];
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

let codec: MessageCodec<NodeMessageHeader> | undefined;

function headerCodec(): MessageCodec<NodeMessageHeader> {
  codec ??= messageCodec<NodeMessageHeader>(loadProto('raft.proto'), 'fastblock.raft.NodeMessage');
  return codec;
}

const EMPTY = new Uint8Array(0);

export function encodeNodeMessage(nm: NodeMessage): EncodedNodeMessage {
  const payload: Uint8Array[] = [];
  const messages: RaftMessageHeader[] = nm.messages.map((m) => {
    const entries = new Array<EntryHeader>(m.entries.length);
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i]!;
      entries[i] = { index: e.index, term: e.term, type: e.type, length: e.data.byteLength };
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
      entries,
      reject: m.reject,
      hint: m.hint,
      hintTerm: m.hintTerm,
      seq: m.seq,
      force: m.force,
      snapshot,
    };
  });
  const header = headerCodec().encode({ from: nm.from, to: nm.to, messages, beats: [...nm.beats], beatResponses: [...nm.beatResponses] });
  return { header, payload };
}

/** Decodes a node message; throws PROTOCOL on a malformed header or a tail that does not match it. */
export function decodeNodeMessage(headerBytes: Uint8Array, tail: Uint8Array): NodeMessage {
  const h = headerCodec().decode(headerBytes);
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
    const entries: Entry[] = m.entries.map((e, i) => {
      // The core asserts these invariants; from the wire they are checked, not trusted.
      if (e.index !== m.index + 1 + i || e.term > m.term || e.type > 255) {
        throw new FastblockError(ErrorCode.PROTOCOL, 'raft entries out of sequence', { group: m.group, prev: m.index, index: e.index, term: e.term });
      }
      return { index: e.index, term: e.term, type: e.type, data: take(e.length) };
    });
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
