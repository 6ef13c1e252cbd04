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

export function checkHistory(history: readonly Operation[], budget = 2_000_000): CheckResult {
  // A write of unknown outcome whose value nobody read may as well never have happened: dropping
  // it keeps every linearization valid and saves the search a factor of two per such write.
  // (Values are unique per write, as the simulator makes them.)
  const read = new Set<string>();
  for (const op of history) if (op.kind === 'get' && op.value !== undefined) read.add(`${op.key}\u0000${op.value}`);
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    if (op.kind === 'put' && op.ret === Infinity && !read.has(`${op.key}\u0000${op.value}`)) continue;
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

  const linearized = new Uint8Array(ops.length);
  let linearizedKnown = 0;
  const cache = new Set<string>();
  const stack: { node: Node; state: string | undefined }[] = [];
  let state: string | undefined = undefined;
  let entry = head.next;
  let steps = 0;
  const key = (s: string | undefined): string => `${s ?? '\u0000'}#${Buffer.from(linearized).toString('latin1')}`;

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
        linearized[entry.id] = 1;
        const k = key(next);
        if (!cache.has(k)) {
          cache.add(k);
          stack.push({ node: entry, state });
          state = next;
          if (!unknownOutcome[entry.id]) linearizedKnown++;
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized[entry.id] = 0;
      }
      entry = entry.next;
    } else {
      // A return whose call could not be linearized before it: backtrack.
      const top = stack.pop();
      if (!top) return false;
      state = top.state;
      linearized[top.node.id] = 0;
      if (!unknownOutcome[top.node.id]) linearizedKnown--;
      unlift(top.node);
      entry = top.node.next;
    }
  }
  return true;
}
