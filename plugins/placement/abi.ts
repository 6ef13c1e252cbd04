/**
 * The policy ABI, host side: how PlacementInput / LeaderBalanceInput become i32 words in a policy's
 * linear memory and how its output words become replicas or transfers. docs/policies.md, "ABI",
 * describes the same layout for policy authors; policies/placement/index.ts is its other side.
 */
import type { LeaderBalanceInput, LeaderTransfer, OsdInfo, PlacementInput, Replica } from '../../kernel/contracts/index.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

export const ABI_VERSION = 1;
export const POLICY_KIND = { placement: 1, leader: 2 } as const;
export type PolicyKind = keyof typeof POLICY_KIND;

export const HEADER_WORDS = 8;
export const OUTPUT_HEADER_WORDS = 4;
export const PLACEMENT_OSD_WORDS = 4;
export const LEADER_OSD_WORDS = 2;
export const FLAG_UP = 1;
export const FLAG_IN = 2;
/** Weights travel as integers in thousandths. */
export const WEIGHT_SCALE = 1000;

/** The exports every policy module must have, by kind. */
export const REQUIRED_EXPORTS: Readonly<Record<PolicyKind, readonly string[]>> = {
  placement: ['memory', 'fastblock_policy_abi', 'fastblock_policy_kind', 'fastblock_alloc', 'fastblock_place'],
  leader: ['memory', 'fastblock_policy_abi', 'fastblock_policy_kind', 'fastblock_alloc', 'fastblock_balance'],
};
export const ENTRY_POINT: Readonly<Record<PolicyKind, string>> = { placement: 'fastblock_place', leader: 'fastblock_balance' };

function rejected(reason: string, context: Record<string, unknown> = {}): FastblockError {
  return new FastblockError(ErrorCode.POLICY_REJECTED, `policy output rejected: ${reason}`, { reason, ...context });
}

function osdFlags(osd: OsdInfo): number {
  return (osd.up ? FLAG_UP : 0) | (osd.in ? FLAG_IN : 0);
}

function weightWord(weight: number): number {
  return Math.max(0, Math.min(0x7fffffff, Math.round(weight * WEIGHT_SCALE)));
}

/** OSDs in the order the policy sees them (by id); a policy answers with indices into this order. */
export function osdOrder(osds: readonly OsdInfo[]): OsdInfo[] {
  return [...osds].sort((a, b) => a.id - b.id);
}

export function encodePlacementInput(input: PlacementInput, order: readonly OsdInfo[]): Int32Array {
  const { pool } = input;
  const size = pool.size;
  const hasPrevious = input.previous.length > 0;
  const words = new Int32Array(HEADER_WORDS + order.length * PLACEMENT_OSD_WORDS + (hasPrevious ? pool.pgNum * (1 + size) : 0));
  const domains = new Map<string, number>();
  for (const osd of order) if (!domains.has(osd.failureDomain)) domains.set(osd.failureDomain, domains.size);
  words.set([ABI_VERSION, pool.pgNum, size, pool.failureDomain === 'host' ? 1 : 0, order.length, domains.size, hasPrevious ? 1 : 0, 0]);
  let at = HEADER_WORDS;
  const index = new Map<number, number>();
  order.forEach((osd, i) => {
    index.set(osd.id, i);
    words.set([domains.get(osd.failureDomain)!, osd.shards, weightWord(osd.weight), osdFlags(osd)], at);
    at += PLACEMENT_OSD_WORDS;
  });
  if (hasPrevious) {
    for (let pg = 0; pg < pool.pgNum; pg++) {
      const replicas = input.previous[pg] ?? [];
      words[at] = replicas.length > 0 ? replicas[0].shard : -1;
      for (let k = 0; k < size; k++) {
        const replica = replicas[k];
        words[at + 1 + k] = replica === undefined ? -1 : (index.get(replica.osd) ?? -1);
      }
      at += 1 + size;
    }
  }
  return words;
}

export function placementOutputWords(header: Int32Array): number {
  return OUTPUT_HEADER_WORDS + Math.max(0, header[2]) * (1 + Math.max(0, header[3]));
}

/** Structural decoding only; validate.ts judges whether the mapping is acceptable. */
export function decodePlacementOutput(words: Int32Array, input: PlacementInput, order: readonly OsdInfo[]): Replica[][] {
  const { pool } = input;
  if (words.length < OUTPUT_HEADER_WORDS || words[0] !== ABI_VERSION) throw rejected('output header has the wrong ABI version');
  if (words[1] !== 0) throw rejected(`policy returned status ${words[1]}`, { status: words[1] });
  if (words[2] !== pool.pgNum) throw rejected(`output maps ${words[2]} PGs, the pool has ${pool.pgNum}`);
  if (words[3] !== pool.size) throw rejected(`output has ${words[3]} slots per PG, the pool size is ${pool.size}`);
  const mapping: Replica[][] = [];
  let at = OUTPUT_HEADER_WORDS;
  for (let pg = 0; pg < pool.pgNum; pg++) {
    const shard = words[at];
    const replicas: Replica[] = [];
    for (let k = 0; k < pool.size; k++) {
      const slot = words[at + 1 + k];
      if (slot === -1) continue;
      const osd = order[slot];
      if (osd === undefined) throw rejected(`PG ${pg} names OSD index ${slot}, outside 0..${order.length - 1}`, { pg });
      replicas.push({ osd: osd.id, shard });
    }
    mapping.push(replicas);
    at += 1 + pool.size;
  }
  return mapping;
}

export function encodeLeaderInput(input: LeaderBalanceInput, order: readonly OsdInfo[]): Int32Array {
  const size = Math.max(1, ...input.pgs.map((pg) => pg.replicas.length));
  const words = new Int32Array(HEADER_WORDS + order.length * LEADER_OSD_WORDS + input.pgs.length * (1 + size));
  words.set([ABI_VERSION, order.length, input.pgs.length, size, input.maxTransfers, 0, 0, 0]);
  const index = new Map<number, number>();
  let at = HEADER_WORDS;
  order.forEach((osd, i) => {
    index.set(osd.id, i);
    words.set([weightWord(osd.weight), osdFlags(osd)], at);
    at += LEADER_OSD_WORDS;
  });
  for (const pg of input.pgs) {
    words[at] = index.get(pg.leaderOsd) ?? -1;
    for (let k = 0; k < size; k++) {
      const replica = pg.replicas[k];
      words[at + 1 + k] = replica === undefined ? -1 : (index.get(replica.osd) ?? -1);
    }
    at += 1 + size;
  }
  return words;
}

export function leaderOutputWords(header: Int32Array): number {
  return OUTPUT_HEADER_WORDS + Math.max(0, header[2]) * 2;
}

export function decodeLeaderOutput(words: Int32Array, input: LeaderBalanceInput, order: readonly OsdInfo[]): LeaderTransfer[] {
  if (words.length < OUTPUT_HEADER_WORDS || words[0] !== ABI_VERSION) throw rejected('output header has the wrong ABI version');
  if (words[1] !== 0) throw rejected(`policy returned status ${words[1]}`, { status: words[1] });
  const count = words[2];
  const transfers: LeaderTransfer[] = [];
  for (let i = 0; i < count; i++) {
    const row = words[OUTPUT_HEADER_WORDS + i * 2];
    const to = words[OUTPUT_HEADER_WORDS + i * 2 + 1];
    const pg = input.pgs[row];
    const osd = order[to];
    if (pg === undefined) throw rejected(`transfer ${i} names PG row ${row}, outside 0..${input.pgs.length - 1}`);
    if (osd === undefined) throw rejected(`transfer ${i} names OSD index ${to}, outside 0..${order.length - 1}`);
    transfers.push({ pool: pg.pool, index: pg.index, toOsd: osd.id });
  }
  return transfers;
}
