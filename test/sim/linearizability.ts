/**
 * A linearizability checker for key/value registers, after Wing & Gong with Lowe's memoization
 * (the algorithm of Porcupine). The history is split per key (a register's operations never
 * constrain another's), and each key is searched separately: walk the history in call order,
 * try to linearize a pending operation whose call precedes every unlinearized return, and
 * backtrack; (linearized set, state) pairs already explored are cached.
 *
 * Operations whose outcome is unknown (a write that timed out) have return time Infinity: they
 * may take effect at any point after their call, or never.
 */
export interface Operation {
  readonly client: number;
  readonly key: string;
  readonly kind: 'put' | 'get';
  /** put: the value written; get: the value read (undefined: the key was never written). */
  readonly value: string | undefined;
  readonly call: number;
  /** Infinity when the outcome is unknown. */
  readonly ret: number;
}

export interface CheckResult {
  readonly ok: boolean;
  /** The key whose history has no linearization. */
  readonly key?: string;
  readonly operations?: readonly Operation[];
}

export function checkHistory(history: readonly Operation[], budget = 20_000_000): CheckResult {
  // Writes of unknown outcome, with values unique per write (as the simulator makes them):
  // - one whose value nobody read may as well never have happened: dropping it keeps every
  //   linearization valid;
  // - one whose value was read did happen, before the earliest such read returned: it becomes a
  //   known write returning then. Either way no optional operation is left to the search, which
  //   would otherwise branch on each of them at every point of the history.
  const firstReadReturn = new Map<string, number>();
  for (const op of history) {
    if (op.kind !== 'get' || op.value === undefined) continue;
    const k = `${op.key}\u0000${op.value}`;
    firstReadReturn.set(k, Math.min(firstReadReturn.get(k) ?? Infinity, op.ret));
  }
  const byKey = new Map<string, Operation[]>();
  for (let op of history) {
    if (op.kind === 'put' && op.ret === Infinity) {
      const seen = firstReadReturn.get(`${op.key}\u0000${op.value}`);
      if (seen === undefined) continue;
      op = { ...op, ret: Math.max(seen, op.call) };
    }
    let list = byKey.get(op.key);
    if (!list) byKey.set(op.key, (list = []));
    list.push(op);
  }
  for (const [key, ops] of [...byKey].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (!checkRegister(ops, budget)) return { ok: false, key, operations: ops };
  }
  return { ok: true };
}

interface Node {
  readonly op: Operation | undefined;
  readonly id: number;
  readonly isCall: boolean;
  match: Node | undefined;
  prev: Node | undefined;
  next: Node | undefined;
}

/** Searches one register's history. */
function checkRegister(ops: readonly Operation[], budget: number): boolean {
  // A doubly linked list of call and return events in time order (calls before returns on ties,
  // so operations that touch are concurrent). Unknown outcomes have no return event.
  type Ev = { t: number; isCall: boolean; id: number };
  const events: Ev[] = [];
  ops.forEach((op, id) => {
    events.push({ t: op.call, isCall: true, id });
    if (op.ret !== Infinity) events.push({ t: op.ret, isCall: false, id });
  });
  events.sort((a, b) => a.t - b.t || Number(b.isCall) - Number(a.isCall) || a.id - b.id);
  const head: Node = { op: undefined, id: -1, isCall: false, match: undefined, prev: undefined, next: undefined };
  let tail = head;
  const calls: Node[] = [];
  const returns: Node[] = [];
  for (const e of events) {
    const n: Node = { op: ops[e.id], id: e.id, isCall: e.isCall, match: undefined, prev: tail, next: undefined };
    tail.next = n;
    tail = n;
    if (e.isCall) calls[e.id] = n;
    else returns[e.id] = n;
  }
  for (let id = 0; id < ops.length; id++) {
    const c = calls[id]!;
    c.match = returns[id];
    if (returns[id]) returns[id]!.match = c;
  }
  const unknownOutcome = ops.map((op) => op.ret === Infinity);
  const mustLinearize = ops.filter((op) => op.ret !== Infinity).length;

  const lift = (n: Node): void => {
    n.prev!.next = n.next;
    if (n.next) n.next.prev = n.prev;
    const m = n.match;
    if (m) {
      m.prev!.next = m.next;
      if (m.next) m.next.prev = m.prev;
    }
  };
  const unlift = (n: Node): void => {
    const m = n.match;
    if (m) {
      m.prev!.next = m;
      if (m.next) m.next.prev = m;
    }
    n.prev!.next = n;
    if (n.next) n.next.prev = n;
  };

  // The set of linearized operations is hashed incrementally (Zobrist: one random 2x32-bit code
  // per operation, XORed in and out), so a cache key costs O(1) instead of O(history).
  const linearized = new Uint8Array(ops.length);
  const codeA = new Uint32Array(ops.length);
  const codeB = new Uint32Array(ops.length);
  let seed = 0x9e3779b9;
  const next32 = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  for (let i = 0; i < ops.length; i++) {
    codeA[i] = next32();
    codeB[i] = next32();
  }
  let hashA = 0;
  let hashB = 0;
  let linearizedKnown = 0;
  // Cache of explored (linearized set, state): hashA -> numbers combining hashB and the state's id.
  const cache = new Map<number, Set<number>>();
  const stateIds = new Map<string | undefined, number>();
  const stateId = (v: string | undefined): number => {
    let id = stateIds.get(v);
    if (id === undefined) stateIds.set(v, (id = stateIds.size));
    return id;
  };
  /** Adds the key; false when it was already there. */
  const remember = (a: number, b: number, v: string | undefined): boolean => {
    let inner = cache.get(a);
    if (!inner) cache.set(a, (inner = new Set()));
    const k = b * 65536 + stateId(v);
    if (inner.has(k)) return false;
    inner.add(k);
    return true;
  };
  const stack: { node: Node; state: string | undefined }[] = [];
  let state: string | undefined = undefined;
  let entry = head.next;
  let steps = 0;

  while (linearizedKnown < mustLinearize) {
    if (++steps > budget) throw new Error(`linearizability search exceeded ${budget} steps`);
    if (entry === undefined) {
      // Only unknown-outcome calls remain unmatched; every known operation is linearized.
      break;
    }
    if (entry.isCall) {
      const op = entry.op!;
      let ok: boolean;
      let next: string | undefined;
      if (op.kind === 'put') {
        ok = true;
        next = op.value;
      } else {
        ok = op.value === state;
        next = state;
      }
      if (ok) {
        const a = (hashA ^ codeA[entry.id]!) >>> 0;
        const b = (hashB ^ codeB[entry.id]!) >>> 0;
        if (remember(a, b, next)) {
          linearized[entry.id] = 1;
          hashA = a;
          hashB = b;
          stack.push({ node: entry, state });
          state = next;
          if (!unknownOutcome[entry.id]) linearizedKnown++;
          lift(entry);
          entry = head.next;
          continue;
        }
      }
      entry = entry.next;
    } else {
      // A return whose call could not be linearized before it: backtrack.
      const top = stack.pop();
      if (!top) return false;
      state = top.state;
      linearized[top.node.id] = 0;
      hashA = (hashA ^ codeA[top.node.id]!) >>> 0;
      hashB = (hashB ^ codeB[top.node.id]!) >>> 0;
      if (!unknownOutcome[top.node.id]) linearizedKnown--;
      unlift(top.node);
      entry = top.node.next;
    }
  }
  return true;
}
