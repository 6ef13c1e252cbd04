// The built-in placement calculator, written in portable AssemblyScript: the same source compiles
// to WebAssembly (policies/build.mjs) and runs as plain TypeScript under tsx once
// assemblyscript/std/portable has defined i32()/f64() (bench/placement uses that for its baseline).
// Portability rules: integer division goes through i32(), no AS-only builtins, typed arrays only.
//
// Method (docs/policies.md): a calculator, not a pseudo-random draw.
//   1. keep every previous replica that is still valid (minimal movement);
//   2. fill each hole with the least-filled failure domain, then its least-filled OSD, relative to
//      weighted targets (water-filled so no domain or OSD is asked for more than one replica per PG);
//   3. move replicas only where an OSD is outside [target * (1 - slack), target * (1 + slack)];
//   4. give every PG one shard id, the same on all replicas, balancing (osd, shard) loads.

export const FLAG_UP: i32 = 1;
export const FLAG_IN: i32 = 2;

/** Fraction an OSD may drift from its target before the rebalance pass moves replicas. */
const SLACK: f64 = 0.05;

export class Cluster {
  osdCount: i32;
  domainCount: i32;
  osdDomain: Int32Array;
  osdShards: Int32Array;
  osdWeight: Float64Array;
  osdUsable: Uint8Array;

  constructor(osdCount: i32, domainCount: i32) {
    this.osdCount = osdCount;
    this.domainCount = domainCount;
    this.osdDomain = new Int32Array(osdCount);
    this.osdShards = new Int32Array(osdCount);
    this.osdWeight = new Float64Array(osdCount);
    this.osdUsable = new Uint8Array(osdCount);
  }

  setOsd(index: i32, domain: i32, shards: i32, weight: f64, flags: i32): void {
    this.osdDomain[index] = domain;
    this.osdShards[index] = shards;
    this.osdWeight[index] = weight;
    const usable = (flags & FLAG_UP) != 0 && (flags & FLAG_IN) != 0 && weight > 0 && shards > 0;
    this.osdUsable[index] = usable ? 1 : 0;
  }
}

/** One mapping: `size` OSD indices per PG (-1 = empty slot) and one shard id per PG (-1 = none). */
export class Mapping {
  pgNum: i32;
  size: i32;
  slots: Int32Array;
  shards: Int32Array;

  constructor(pgNum: i32, size: i32) {
    this.pgNum = pgNum;
    this.size = size;
    this.slots = new Int32Array(pgNum * size).fill(-1);
    this.shards = new Int32Array(pgNum).fill(-1);
  }
}

/**
 * Targets that sum to `total` in proportion to `weight`, none above `cap` (one replica per PG per
 * OSD or domain): classic water-filling. Entries with `usable[i] == 0` get 0.
 */
function waterfill(weight: Float64Array, usable: Uint8Array, total: f64, cap: f64): Float64Array {
  const n = weight.length;
  const target = new Float64Array(n);
  const capped = new Uint8Array(n);
  let remaining = total;
  for (let round = 0; round < n + 1; round++) {
    let free: f64 = 0;
    for (let i = 0; i < n; i++) if (usable[i] != 0 && capped[i] == 0) free += weight[i];
    if (free <= 0 || remaining <= 0) break;
    let changed = false;
    for (let i = 0; i < n; i++) {
      if (usable[i] == 0 || capped[i] != 0) continue;
      const share = (remaining * weight[i]) / free;
      if (share > cap) {
        target[i] = cap;
        capped[i] = 1;
        remaining -= cap;
        changed = true;
      }
    }
    if (changed) continue;
    for (let i = 0; i < n; i++) if (usable[i] != 0 && capped[i] == 0) target[i] = (remaining * weight[i]) / free;
    break;
  }
  return target;
}

export class Calculator {
  cluster: Cluster;
  pgNum: i32;
  size: i32;
  /** Replicas per PG actually placed: min(size, usable OSDs). */
  replicas: i32;
  /** True when there are enough usable domains for every replica to get its own. */
  distinctDomains: bool;
  out: Mapping;
  osdCount: Int32Array = new Int32Array(0);
  domainCount: Int32Array = new Int32Array(0);
  osdTarget: Float64Array = new Float64Array(0);
  domainTarget: Float64Array = new Float64Array(0);
  /** OSD -> failure domain index (each OSD is its own domain when the pool's domain is "osd"). */
  domainOf: Int32Array = new Int32Array(0);
  domains: i32 = 0;
  /** Domain -> its OSDs, as CSR offsets into domainOsds. */
  domainStart: Int32Array = new Int32Array(0);
  domainOsds: Int32Array = new Int32Array(0);

  constructor(cluster: Cluster, pgNum: i32, size: i32, hostDomains: bool) {
    this.cluster = cluster;
    this.pgNum = pgNum;
    this.size = size;
    this.out = new Mapping(pgNum, size);
    const n = cluster.osdCount;
    const d = cluster.domainCount;
    this.osdCount = new Int32Array(n);
    this.domainCount = new Int32Array(d);

    // With failure domain "osd" every OSD is its own domain.
    const domainOf = new Int32Array(n);
    for (let i = 0; i < n; i++) domainOf[i] = hostDomains ? cluster.osdDomain[i] : i;
    const domains = hostDomains ? d : n;
    this.domainCount = new Int32Array(domains);
    this.domainOf = domainOf;
    this.domains = domains;

    const domainWeight = new Float64Array(domains);
    const domainUsable = new Uint8Array(domains);
    let usableOsds = 0;
    let usableDomains = 0;
    for (let i = 0; i < n; i++) {
      if (cluster.osdUsable[i] == 0) continue;
      usableOsds++;
      const dom = domainOf[i];
      if (domainUsable[dom] == 0) usableDomains++;
      domainUsable[dom] = 1;
      domainWeight[dom] += cluster.osdWeight[i];
    }
    this.replicas = usableOsds < size ? usableOsds : size;
    this.distinctDomains = usableDomains >= this.replicas;

    const total = f64(pgNum) * f64(this.replicas);
    const domainCap = this.distinctDomains ? f64(pgNum) : total;
    this.domainTarget = waterfill(domainWeight, domainUsable, total, domainCap);

    // CSR lists of OSDs per domain.
    this.domainStart = new Int32Array(domains + 1);
    for (let i = 0; i < n; i++) this.domainStart[domainOf[i] + 1]++;
    for (let k = 0; k < domains; k++) this.domainStart[k + 1] += this.domainStart[k];
    this.domainOsds = new Int32Array(n);
    const fill = new Int32Array(domains);
    for (let i = 0; i < n; i++) {
      const dom = domainOf[i];
      this.domainOsds[this.domainStart[dom] + fill[dom]] = i;
      fill[dom]++;
    }

    // Each domain's target shared among its OSDs, at most one replica per PG per OSD.
    this.osdTarget = new Float64Array(n);
    for (let k = 0; k < domains; k++) {
      const first = this.domainStart[k];
      const count = this.domainStart[k + 1] - first;
      const w = new Float64Array(count);
      const u = new Uint8Array(count);
      for (let j = 0; j < count; j++) {
        const osd = this.domainOsds[first + j];
        w[j] = cluster.osdWeight[osd];
        u[j] = cluster.osdUsable[osd];
      }
      const t = waterfill(w, u, this.domainTarget[k], f64(pgNum));
      for (let j = 0; j < count; j++) this.osdTarget[this.domainOsds[first + j]] = t[j];
    }
  }

  /** Runs all passes. `previous` may be null for a new pool. */
  compute(previous: Mapping | null): Mapping {
    if (previous != null) this.keep(previous);
    this.fill();
    this.rebalance();
    this.assignShards();
    return this.out;
  }

  private holds(pg: i32, osd: i32): bool {
    const base = pg * this.size;
    for (let k = 0; k < this.size; k++) if (this.out.slots[base + k] == osd) return true;
    return false;
  }

  /** True if a replica of `pg` other than the one at slot `except` lives in `domain`. */
  private domainUsed(pg: i32, domain: i32, except: i32): bool {
    const base = pg * this.size;
    for (let k = 0; k < this.size; k++) {
      if (base + k == except) continue;
      const osd = this.out.slots[base + k];
      if (osd >= 0 && this.domainOf[osd] == domain) return true;
    }
    return false;
  }

  private place(slot: i32, osd: i32): void {
    this.out.slots[slot] = osd;
    this.osdCount[osd]++;
    this.domainCount[this.domainOf[osd]]++;
  }

  private unplace(slot: i32): void {
    const osd = this.out.slots[slot];
    this.out.slots[slot] = -1;
    this.osdCount[osd]--;
    this.domainCount[this.domainOf[osd]]--;
  }

  /** Pass 1: previous replicas that are still valid stay where they are, in their order. */
  private keep(previous: Mapping): void {
    const c = this.cluster;
    const pgs = previous.pgNum < this.pgNum ? previous.pgNum : this.pgNum;
    for (let pg = 0; pg < pgs; pg++) {
      const shard = previous.shards[pg];
      let next = 0;
      for (let k = 0; k < previous.size && next < this.replicas; k++) {
        const osd = previous.slots[pg * previous.size + k];
        if (osd < 0 || osd >= c.osdCount || c.osdUsable[osd] == 0) continue;
        if (shard >= c.osdShards[osd]) continue;
        if (this.holds(pg, osd)) continue;
        if (this.distinctDomains && this.domainUsed(pg, this.domainOf[osd], -1)) continue;
        this.place(pg * this.size + next, osd);
        next++;
      }
      if (next > 0) this.out.shards[pg] = shard;
    }
  }

  /** The least-filled eligible OSD for `slot` of `pg`, or -1. Starts scanning at a PG-dependent offset so ties spread. */
  private choose(pg: i32, slot: i32): i32 {
    const c = this.cluster;
    const shard = this.out.shards[pg];
    const domains = this.domains;
    let best = -1;
    let bestScore: f64 = 0;
    const startDomain = domains > 0 ? (pg * 7 + slot) % domains : 0;
    for (let dd = 0; dd < domains; dd++) {
      const dom = (startDomain + dd) % domains;
      const dt = this.domainTarget[dom];
      if (dt <= 0) continue;
      let penalty: f64 = 0;
      if (this.domainUsed(pg, dom, -1)) {
        if (this.distinctDomains) continue;
        penalty = 1e9;
      }
      const domainScore = penalty + (f64(this.domainCount[dom]) + 1) / dt;
      if (best >= 0 && domainScore >= bestScore) continue;
      const osd = this.leastFilledIn(dom, pg, shard);
      if (osd < 0) continue;
      best = osd;
      bestScore = domainScore;
    }
    return best;
  }

  private leastFilledIn(dom: i32, pg: i32, shard: i32): i32 {
    const c = this.cluster;
    const first = this.domainStart[dom];
    const count = this.domainStart[dom + 1] - first;
    let best = -1;
    let bestScore: f64 = 0;
    const start = count > 0 ? pg % count : 0;
    for (let j = 0; j < count; j++) {
      const osd = this.domainOsds[first + ((start + j) % count)];
      if (c.osdUsable[osd] == 0 || this.osdTarget[osd] <= 0) continue;
      if (shard >= c.osdShards[osd]) continue;
      if (this.holds(pg, osd)) continue;
      const score = (f64(this.osdCount[osd]) + 1) / this.osdTarget[osd];
      if (best < 0 || score < bestScore) {
        best = osd;
        bestScore = score;
      }
    }
    return best;
  }

  /** Pass 2: every empty slot gets the least-filled eligible OSD. */
  private fill(): void {
    for (let pg = 0; pg < this.pgNum; pg++) {
      const base = pg * this.size;
      for (let k = 0; k < this.replicas; k++) {
        if (this.out.slots[base + k] >= 0) continue;
        const osd = this.choose(pg, k);
        if (osd >= 0) this.place(base + k, osd);
      }
    }
  }

  private canTake(slot: i32, osd: i32): bool {
    const pg = i32(slot / this.size);
    if (this.out.shards[pg] >= this.cluster.osdShards[osd]) return false;
    if (this.holds(pg, osd)) return false;
    if (this.distinctDomains && this.domainUsed(pg, this.domainOf[osd], slot)) return false;
    return true;
  }

  private move(slot: i32, to: i32): void {
    this.unplace(slot);
    this.place(slot, to);
  }

  /**
   * Pass 3: an OSD below target * (1 - SLACK) takes replicas from the fullest OSDs until it reaches
   * its target; an OSD above target * (1 + SLACK) gives replicas to the emptiest. Nothing else moves,
   * so a map that is already balanced is left alone.
   */
  private rebalance(): void {
    const n = this.cluster.osdCount;
    const total = this.pgNum * this.size;
    for (let r = 0; r < n; r++) {
      const t = this.osdTarget[r];
      if (t <= 0 || f64(this.osdCount[r]) >= t * (1 - SLACK)) continue;
      const goal = i32(Math.floor(t));
      while (this.osdCount[r] < goal) {
        let moved = false;
        // Donors from fullest to emptiest relative to target; stop when none is fuller than r.
        const tried = new Uint8Array(n);
        for (;;) {
          let donor = -1;
          let donorScore: f64 = 0;
          for (let d = 0; d < n; d++) {
            if (tried[d] != 0 || d == r || this.osdCount[d] == 0) continue;
            const dt = this.osdTarget[d];
            const score = dt > 0 ? f64(this.osdCount[d] - 1) / dt : 1e18;
            if (donor < 0 || score > donorScore) {
              donor = d;
              donorScore = score;
            }
          }
          if (donor < 0 || donorScore < (f64(this.osdCount[r]) + 1) / t) break;
          tried[donor] = 1;
          for (let slot = 0; slot < total; slot++) {
            if (this.out.slots[slot] != donor || !this.canTake(slot, r)) continue;
            this.move(slot, r);
            moved = true;
            break;
          }
          if (moved) break;
        }
        if (!moved) break;
      }
    }
    for (let d = 0; d < n; d++) {
      const t = this.osdTarget[d];
      if (this.osdCount[d] == 0 || f64(this.osdCount[d]) <= t * (1 + SLACK) + 1) continue;
      const goal = i32(Math.ceil(t));
      for (let slot = 0; slot < total && this.osdCount[d] > goal; slot++) {
        if (this.out.slots[slot] != d) continue;
        let receiver = -1;
        let receiverScore: f64 = 0;
        for (let r = 0; r < n; r++) {
          const rt = this.osdTarget[r];
          if (r == d || rt <= 0 || !this.canTake(slot, r)) continue;
          const score = (f64(this.osdCount[r]) + 1) / rt;
          if (receiver < 0 || score < receiverScore) {
            receiver = r;
            receiverScore = score;
          }
        }
        if (receiver >= 0 && receiverScore <= f64(this.osdCount[d]) / t) this.move(slot, receiver);
      }
    }
  }

  /** Pass 4: a PG keeps its shard when every replica has it; others get the least-loaded common shard. */
  private assignShards(): void {
    const c = this.cluster;
    const n = c.osdCount;
    const shardBase = new Int32Array(n + 1);
    for (let i = 0; i < n; i++) shardBase[i + 1] = shardBase[i] + c.osdShards[i];
    const load = new Int32Array(shardBase[n]);
    const pending = new Uint8Array(this.pgNum);
    for (let pg = 0; pg < this.pgNum; pg++) {
      const shard = this.out.shards[pg];
      const base = pg * this.size;
      let common = 1 << 30;
      let any = false;
      for (let k = 0; k < this.size; k++) {
        const osd = this.out.slots[base + k];
        if (osd < 0) continue;
        any = true;
        if (c.osdShards[osd] < common) common = c.osdShards[osd];
      }
      if (!any) {
        this.out.shards[pg] = -1;
        continue;
      }
      if (shard >= 0 && shard < common) {
        for (let k = 0; k < this.size; k++) {
          const osd = this.out.slots[base + k];
          if (osd >= 0) load[shardBase[osd] + shard]++;
        }
      } else {
        pending[pg] = 1;
      }
    }
    for (let pg = 0; pg < this.pgNum; pg++) {
      if (pending[pg] == 0) continue;
      const base = pg * this.size;
      let common = 1 << 30;
      for (let k = 0; k < this.size; k++) {
        const osd = this.out.slots[base + k];
        if (osd >= 0 && c.osdShards[osd] < common) common = c.osdShards[osd];
      }
      let best = -1;
      let bestMax = 0;
      let bestSum = 0;
      for (let j = 0; j < common; j++) {
        const s = (pg + j) % common;
        let max = 0;
        let sum = 0;
        for (let k = 0; k < this.size; k++) {
          const osd = this.out.slots[base + k];
          if (osd < 0) continue;
          const l = load[shardBase[osd] + s];
          sum += l;
          if (l > max) max = l;
        }
        if (best < 0 || max < bestMax || (max == bestMax && sum < bestSum)) {
          best = s;
          bestMax = max;
          bestSum = sum;
        }
      }
      this.out.shards[pg] = best;
      for (let k = 0; k < this.size; k++) {
        const osd = this.out.slots[base + k];
        if (osd >= 0) load[shardBase[osd] + best]++;
      }
    }
  }
}

export function computePlacement(cluster: Cluster, pgNum: i32, size: i32, hostDomains: bool, previous: Mapping | null): Mapping {
  return new Calculator(cluster, pgNum, size, hostDomains).compute(previous);
}
