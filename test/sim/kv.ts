/**
 * The replicated state machine of the simulator: a key/value register per group. A write entry
 * carries (op id, key, value); the op id lets a client recognise its own entry when applied.
 */
const enc = new TextEncoder();
const dec = new TextDecoder();

export interface WriteOp {
  readonly id: number;
  readonly key: string;
  readonly value: string;
}

export function encodeWrite(op: WriteOp): Uint8Array {
  return enc.encode(`${op.id}|${op.key}|${op.value}`);
}

export function decodeWrite(data: Uint8Array): WriteOp {
  const [id, key, value] = dec.decode(data).split('|');
  return { id: Number(id), key: key!, value: value! };
}

export class KvStateMachine {
  readonly values = new Map<string, string>();
  applied = 0;

  apply(index: number, data: Uint8Array | undefined): WriteOp | undefined {
    this.applied = index;
    if (!data || data.byteLength === 0) return undefined;
    const op = decodeWrite(data);
    this.values.set(op.key, op.value);
    return op;
  }

  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify([...this.values].sort()));
  }

  restore(index: number, data: Uint8Array): void {
    this.values.clear();
    if (data.byteLength > 0) for (const [k, v] of JSON.parse(dec.decode(data)) as [string, string][]) this.values.set(k, v);
    this.applied = index;
  }
}
