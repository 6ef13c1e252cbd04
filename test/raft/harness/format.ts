/** Human-readable, stable renderings of raft data for golden traces. */
import { EntryType, MESSAGE_TYPE_NAMES } from '../../../kernel/raft/index.js';
import type { Entry, Message, Ready } from '../../../kernel/raft/index.js';
import { decodeMembership } from '../../../kernel/raft/membership.js';

const text = new TextDecoder();

export function formatEntry(e: Entry): string {
  if (e.type === EntryType.Membership) {
    const m = decodeMembership(e.data);
    return `${e.term}/${e.index} Membership v=[${m.voters.join(',')}] l=[${m.learners.join(',')}]`;
  }
  return e.data.byteLength === 0 ? `${e.term}/${e.index} Normal ""` : `${e.term}/${e.index} Normal "${text.decode(e.data)}"`;
}

export function formatMessage(m: Message): string {
  const parts = [`${m.from}->${m.to} ${MESSAGE_TYPE_NAMES[m.type]} term=${m.term}`];
  switch (m.type) {
    case 5: // App
      parts.push(`prev=${m.logTerm}/${m.index} commit=${m.commit}`);
      if (m.entries.length > 0) parts.push(`entries=[${m.entries.map(formatEntry).join(', ')}]`);
      break;
    case 6: // AppResp
      parts.push(`index=${m.index}`);
      if (m.reject) parts.push(`rejected hint=${m.hintTerm}/${m.hint}`);
      break;
    case 1:
    case 3: // PreVote, Vote
      parts.push(`last=${m.logTerm}/${m.index}`);
      if (m.force) parts.push('force');
      break;
    case 2:
    case 4:
      if (m.reject) parts.push('rejected');
      break;
    case 7:
      parts.push(`commit=${m.commit} seq=${m.seq}`);
      break;
    case 8:
      parts.push(`seq=${m.seq} last=${m.index}`);
      break;
    case 9:
      if (m.snapshot) parts.push(`snap=${m.snapshot.meta.term}/${m.snapshot.meta.index} bytes=${m.snapshot.offset}+${m.snapshot.data.byteLength}/${m.snapshot.total}`);
      break;
    case 10:
      parts.push(`snap=${m.index} received=${m.seq}${m.reject ? ' rejected' : ''}`);
      break;
  }
  return parts.join(' ');
}

export function formatReady(id: number, rd: Ready): string[] {
  const out = [`> ${id} ready`];
  if (rd.softState) out.push(`  state: ${rd.softState.role} leader=${rd.softState.leader}`);
  if (rd.hardState) out.push(`  hard: term=${rd.hardState.term} vote=${rd.hardState.vote} commit=${rd.hardState.commit}`);
  if (rd.snapshot) {
    const m = rd.snapshot.meta;
    out.push(`  snapshot: ${m.term}/${m.index} v=[${m.membership.voters.join(',')}] l=[${m.membership.learners.join(',')}] bytes=${rd.snapshot.data.byteLength}`);
  }
  for (const e of rd.entries) out.push(`  persist: ${formatEntry(e)}`);
  for (const e of rd.committed) out.push(`  apply: ${formatEntry(e)}`);
  for (const m of rd.messages) out.push(`  send: ${formatMessage(m)}`);
  for (const m of rd.messagesAfterPersist) out.push(`  send after persist: ${formatMessage(m)}`);
  for (const r of rd.readStates) out.push(`  read: ctx=${r.context} index=${r.index}`);
  return out;
}
