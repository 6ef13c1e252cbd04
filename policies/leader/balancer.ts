// The built-in leader policy, portable AssemblyScript (see policies/placement/calculator.ts).
// Evens the number of PG leaders per up OSD: repeatedly takes the OSD leading the most PGs and hands
// one of its PGs to the replica OSD leading the fewest, while that narrows the gap by at least two.
// Each PG moves at most once per round and a round returns at most `maxTransfers` transfers.

export class LeaderInput {
  osdCount: i32;
  pgCount: i32;
  size: i32;
  osdUp: Uint8Array;
  osdWeight: Float64Array;
  /** Per PG: the leader's OSD index or -1. */
  leader: Int32Array;
  /** Per PG: `size` OSD indices (-1 = empty). */
  replicas: Int32Array;

  constructor(osdCount: i32, pgCount: i32, size: i32) {
    this.osdCount = osdCount;
    this.pgCount = pgCount;
    this.size = size;
    this.osdUp = new Uint8Array(osdCount);
    this.osdWeight = new Float64Array(osdCount);
    this.leader = new Int32Array(pgCount).fill(-1);
    this.replicas = new Int32Array(pgCount * size).fill(-1);
  }
}

export class Transfers {
  count: i32 = 0;
  /** Pairs (pg row, target OSD index). */
  pairs: Int32Array;

  constructor(max: i32) {
    this.pairs = new Int32Array(max * 2);
  }
}

export function balanceLeaders(input: LeaderInput, maxTransfers: i32): Transfers {
  const n = input.osdCount;
  const out = new Transfers(maxTransfers);
  const leaders = new Float64Array(n);
  for (let pg = 0; pg < input.pgCount; pg++) {
    const l = input.leader[pg];
    if (l >= 0 && l < n) leaders[l] += 1;
  }
  // Normalize by weight so a heavier OSD leads proportionally more.
  const norm = new Float64Array(n);
  for (let i = 0; i < n; i++) norm[i] = input.osdWeight[i] > 0 ? input.osdWeight[i] : 1;
  const moved = new Uint8Array(input.pgCount);
  const exhausted = new Uint8Array(n);

  while (out.count < maxTransfers) {
    let from = -1;
    for (let i = 0; i < n; i++) {
      if (exhausted[i] != 0 || leaders[i] == 0) continue;
      if (from < 0 || leaders[i] / norm[i] > leaders[from] / norm[from]) from = i;
    }
    if (from < 0) break;
    let bestPg = -1;
    let bestTo = -1;
    let bestScore: f64 = 0;
    for (let pg = 0; pg < input.pgCount; pg++) {
      if (input.leader[pg] != from || moved[pg] != 0) continue;
      for (let k = 0; k < input.size; k++) {
        const to = input.replicas[pg * input.size + k];
        if (to < 0 || to >= n || to == from || input.osdUp[to] == 0) continue;
        const score = (leaders[to] + 1) / norm[to];
        if (bestTo < 0 || score < bestScore) {
          bestPg = pg;
          bestTo = to;
          bestScore = score;
        }
      }
    }
    if (bestTo < 0 || bestScore > (leaders[from] - 1) / norm[from]) {
      exhausted[from] = 1;
      continue;
    }
    moved[bestPg] = 1;
    leaders[from] -= 1;
    leaders[bestTo] += 1;
    out.pairs[out.count * 2] = bestPg;
    out.pairs[out.count * 2 + 1] = bestTo;
    out.count++;
  }
  return out;
}
