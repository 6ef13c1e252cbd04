// ABI glue of the built-in leader policy (AssemblyScript only). Layout: docs/policies.md, "ABI".
import { LeaderInput, balanceLeaders } from './balancer';

const ABI_VERSION: i32 = 1;
const KIND_LEADER: i32 = 2;
const HEADER_WORDS: i32 = 8;
const OSD_WORDS: i32 = 2;
const FLAG_UP: i32 = 1;
const STATUS_OK: i32 = 0;
const STATUS_BAD_INPUT: i32 = 1;

export function fastblock_policy_abi(): i32 {
  return ABI_VERSION;
}

export function fastblock_policy_kind(): i32 {
  return KIND_LEADER;
}

export function fastblock_alloc(bytes: i32): usize {
  return heap.alloc(<usize>bytes);
}

function word(base: usize, index: i32): i32 {
  return load<i32>(base + ((<usize>index) << 2));
}

export function fastblock_balance(input: usize): usize {
  const osdCount = word(input, 1);
  const pgCount = word(input, 2);
  const size = word(input, 3);
  const maxTransfers = word(input, 4);
  if (word(input, 0) != ABI_VERSION || osdCount < 0 || pgCount < 0 || size <= 0 || maxTransfers < 0) {
    const bad = heap.alloc(16);
    store<i32>(bad, ABI_VERSION);
    store<i32>(bad + 4, STATUS_BAD_INPUT);
    store<i32>(bad + 8, 0);
    store<i32>(bad + 12, 0);
    return bad;
  }
  const input_ = new LeaderInput(osdCount, pgCount, size);
  let at = HEADER_WORDS;
  for (let i = 0; i < osdCount; i++) {
    input_.osdWeight[i] = f64(word(input, at)) / 1000;
    input_.osdUp[i] = (word(input, at + 1) & FLAG_UP) != 0 ? 1 : 0;
    at += OSD_WORDS;
  }
  for (let pg = 0; pg < pgCount; pg++) {
    input_.leader[pg] = word(input, at);
    for (let k = 0; k < size; k++) input_.replicas[pg * size + k] = word(input, at + 1 + k);
    at += 1 + size;
  }
  const transfers = balanceLeaders(input_, maxTransfers);
  const out = heap.alloc((<usize>(4 + transfers.count * 2)) << 2);
  store<i32>(out, ABI_VERSION);
  store<i32>(out + 4, STATUS_OK);
  store<i32>(out + 8, transfers.count);
  store<i32>(out + 12, 0);
  for (let i = 0; i < transfers.count * 2; i++) store<i32>(out + 16 + ((<usize>i) << 2), transfers.pairs[i]);
  return out;
}
