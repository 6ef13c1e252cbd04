// ABI glue of the built-in placement policy (AssemblyScript only). Layout: docs/policies.md, "ABI".
// The host asks for an input buffer with fastblock_alloc, writes i32 words into it, calls
// fastblock_place, and reads the i32 words at the returned pointer.
import { Cluster, Mapping, computePlacement } from './calculator';

const ABI_VERSION: i32 = 1;
const KIND_PLACEMENT: i32 = 1;
const HEADER_WORDS: i32 = 8;
const OSD_WORDS: i32 = 4;
const STATUS_OK: i32 = 0;
const STATUS_BAD_INPUT: i32 = 1;

export function fastblock_policy_abi(): i32 {
  return ABI_VERSION;
}

export function fastblock_policy_kind(): i32 {
  return KIND_PLACEMENT;
}

export function fastblock_alloc(bytes: i32): usize {
  return heap.alloc(<usize>bytes);
}

function word(base: usize, index: i32): i32 {
  return load<i32>(base + ((<usize>index) << 2));
}

function failed(status: i32): usize {
  const out = heap.alloc(4 << 2);
  store<i32>(out, ABI_VERSION);
  store<i32>(out + 4, status);
  store<i32>(out + 8, 0);
  store<i32>(out + 12, 0);
  return out;
}

export function fastblock_place(input: usize): usize {
  if (word(input, 0) != ABI_VERSION) return failed(STATUS_BAD_INPUT);
  const pgNum = word(input, 1);
  const size = word(input, 2);
  const hostDomains = word(input, 3) == 1;
  const osdCount = word(input, 4);
  const domainCount = word(input, 5);
  const hasPrevious = word(input, 6) == 1;
  if (pgNum <= 0 || size <= 0 || osdCount < 0 || domainCount < 0) return failed(STATUS_BAD_INPUT);

  const cluster = new Cluster(osdCount, domainCount);
  let at = HEADER_WORDS;
  for (let i = 0; i < osdCount; i++) {
    cluster.setOsd(i, word(input, at), word(input, at + 1), f64(word(input, at + 2)) / 1000, word(input, at + 3));
    at += OSD_WORDS;
  }
  let previous: Mapping | null = null;
  if (hasPrevious) {
    const prev = new Mapping(pgNum, size);
    for (let pg = 0; pg < pgNum; pg++) {
      prev.shards[pg] = word(input, at);
      for (let k = 0; k < size; k++) prev.slots[pg * size + k] = word(input, at + 1 + k);
      at += 1 + size;
    }
    previous = prev;
  }

  const mapping = computePlacement(cluster, pgNum, size, hostDomains, previous);

  const words = 4 + pgNum * (1 + size);
  const out = heap.alloc((<usize>words) << 2);
  store<i32>(out, ABI_VERSION);
  store<i32>(out + 4, STATUS_OK);
  store<i32>(out + 8, pgNum);
  store<i32>(out + 12, size);
  let o: usize = out + 16;
  for (let pg = 0; pg < pgNum; pg++) {
    store<i32>(o, mapping.shards[pg]);
    o += 4;
    for (let k = 0; k < size; k++) {
      store<i32>(o, mapping.slots[pg * size + k]);
      o += 4;
    }
  }
  return out;
}
