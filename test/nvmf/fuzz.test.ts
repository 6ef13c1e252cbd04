// @slow (100,000 PDUs: 7-15 s alone, longer beside the VM suites)
/**
 * PDU fuzzer: at least 100,000 mutated PDUs per run, in-process (no sockets), each on its own
 * connection at one of four stages (before ICReq, before Connect, admin queue of the NVM or the
 * discovery controller, I/O queue with and without digests). After each mutated PDU a valid probe command follows. The target must never
 * throw, and every connection must end in one of the states the specification allows:
 *   - closed after a well-formed C2HTermReq (FES 1..6, PLEN <= 152) that is its last PDU, or
 *     closed without a word after an H2CTermReq;
 *   - or open, with every command answered by well-formed PDUs naming commands that were sent,
 *     nothing stuck except R2T transfers awaiting data (and at most AERL+1 event requests), and the
 *     probe answered unless the target is still waiting for the rest of a PDU.
 * FASTBLOCK_FUZZ_SEED and FASTBLOCK_FUZZ_PDUS override the seed and the count.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { NvmfTarget } from '../../plugins/frontend-nvmf/target.js';
import { DISCOVERY_NQN } from '../../plugins/frontend-nvmf/subsystem/discovery-subsystem.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';
import { Endpoint, settle } from './support/endpoint.js';
import {
  HOST_NQN,
  SGL_ICD,
  T,
  capsuleCmd,
  connectCapsule,
  cqeOf,
  dataFieldsOf,
  h2cData,
  icReq,
  sqe,
  termFieldsOf,
  type C2HPdu,
  type Digests,
} from './support/host-pdu.js';

const TOTAL = Number(process.env.FASTBLOCK_FUZZ_PDUS ?? 100_000);
const SEED = Number(process.env.FASTBLOCK_FUZZ_SEED ?? Date.now() % 2 ** 31);
const PROBE_CID = 0xbeef;

/** mulberry32: small, fast, reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = rng(SEED);
const int = (n: number) => Math.floor(random() * n);
const pick = <X>(xs: readonly X[]): X => xs[int(xs.length)]!;
const INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x04, 0x07, 0x08, 0x09, 0x18, 0x48, 0x5a, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_U32 = [0, 1, 4, 8, 24, 72, 128, 4095, 4096, 8192, 131072, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

function mutate(pdu: Uint8Array): Uint8Array {
  const out = Uint8Array.from(pdu);
  const view = new DataView(out.buffer);
  const header = Math.min(out.length, 72);
  switch (int(9)) {
    case 0: // flip bits
      for (let i = int(4) + 1; i > 0; i--) {
        const at = int(out.length);
        out[at] = out[at]! ^ (1 << int(8));
      }
      return out;
    case 1: // an interesting byte somewhere in the header
      out[int(header)] = pick(INTERESTING_BYTES);
      return out;
    case 2: // an interesting dword in the header or the SQE
      if (header >= 4) view.setUint32(int(header - 3), pick(INTERESTING_U32), true);
      return out;
    case 3: // a common-header field
      if (int(2)) out[int(4)] = int(256);
      else view.setUint32(4, pick([...INTERESTING_U32, out.length - 1, out.length + 1, out.length + 4]), true);
      return out;
    case 4: // truncated
      return out.subarray(0, int(out.length));
    case 5: // trailing garbage
      return Buffer.concat([out, Uint8Array.from({ length: int(64) + 1 }, () => int(256))]);
    case 6: // random bytes in the SQE's command dwords
      for (let i = int(8) + 1; i > 0; i--) out[8 + int(Math.min(64, Math.max(1, out.length - 8)))] = int(256);
      return out;
    case 7: // the same PDU twice, pipelined (a Connect, a command id, an H2CData)
      return Buffer.concat([out, out]);
    default: {
      // garbage with a plausible common header
      const junk = Uint8Array.from({ length: 8 + int(200) }, () => int(256));
      junk[0] = pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      new DataView(junk.buffer).setUint32(4, int(2) ? junk.length : int(300), true);
      return junk;
    }
  }
}

/** Feeds bytes in random slices, as TCP may deliver them. */
function feed(ep: Endpoint, bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length && !ep.closed) {
    const n = int(3) === 0 ? int(bytes.length - at) + 1 : bytes.length - at;
    ep.receive(bytes.subarray(at, at + n));
    at += n;
  }
}

const provider = new MemoryVolumeProvider(16 * 1024 * 1024);
provider.create('rbd/fuzz');
const target = new NvmfTarget(provider, pino({ level: 'silent' }), { port: 0, maxIoQueues: 8 });
let nqn = '';
let cntlid = 0;
let admin: Endpoint;

type Stage = 'ic' | 'connect' | 'admin' | 'io';

interface Run {
  readonly ep: Endpoint;
  readonly digests: Digests;
  /** The valid PDU this run mutates (none when the stage could not be reached). */
  readonly pdu: Uint8Array | undefined;
}

/** Brings a fresh connection to `stage` and builds one of that stage's PDUs (only the one picked). */
async function prepare(stage: Stage): Promise<Run> {
  const digests: Digests = stage === 'io' && int(3) === 0 ? { header: true, data: true } : { header: false, data: false };
  const ep = new Endpoint(target);
  if (stage === 'ic') return { ep, digests, pdu: icReq({ dgst: int(4), hpda: int(2) ? 0 : int(40), maxr2t: int(4) }) };
  ep.receive(icReq({ dgst: (digests.header ? 1 : 0) | (digests.data ? 2 : 0) }));
  if (stage === 'connect') {
    const pdu = int(2)
      ? connectCapsule({ qid: 0, sqsize: 31, kato: int(2) ? 0 : 100000, subnqn: nqn, hostnqn: HOST_NQN })
      : connectCapsule({ qid: 1 + int(3), sqsize: 127, cntlid, subnqn: nqn, hostnqn: HOST_NQN });
    return { ep, digests, pdu };
  }
  const qid = stage === 'admin' ? 0 : 1 + int(8);
  // A quarter of the admin queues talk to the discovery controller.
  const subnqn = stage === 'admin' && int(4) === 0 ? DISCOVERY_NQN : nqn;
  ep.receive(connectCapsule({ qid, sqsize: qid === 0 ? 31 : 127, cntlid: qid === 0 ? 0xffff : cntlid, subnqn, hostnqn: HOST_NQN }, digests));
  await settle();
  const connected = ep.out[1];
  if (!connected || cqeOf(connected).status !== 0) return { ep, digests, pdu: undefined };
  const cmd = (fields: Parameters<typeof sqe>[0], data?: Uint8Array) => capsuleCmd(sqe(fields), data, digests);
  if (stage === 'admin') {
    ep.receive(cmd({ opcode: 0x7f, fctype: 0x00, cid: 1, cdw11: 0x14, cdw12: 0x00460001 }));
    const build = pick([
      () => cmd({ opcode: 0x06, cid: 2, nsid: 1, cdw10: int(4), sglLength: 4096 }),
      () => cmd({ opcode: 0x02, cid: 3, nsid: 0xffffffff, cdw10: pick([1, 2, 3, 5, 0x70]) | (127 << 16), sglLength: 512 }),
      () => cmd({ opcode: 0x09, cid: 4, cdw10: pick([7, 0x0b, 0x0f]), cdw11: int(65536) }),
      () => cmd({ opcode: 0x0a, cid: 5, cdw10: pick([7, 0x0b, 0x0f, 6]) }),
      () => cmd({ opcode: 0x7f, fctype: 0x04, cid: 6, cdw10: int(2), cdw11: pick([0, 8, 0x14, 0x1c]) }),
      () => cmd({ opcode: 0x18, cid: 7 }),
    ]);
    return { ep, digests, pdu: build() };
  }
  const lba = int(1000);
  const choice = int(6);
  if (choice === 5) {
    // A write solicited by R2T: the H2CData PDU is the one mutated.
    ep.receive(cmd({ opcode: 0x01, cid: 15, nsid: 1, cdw10: lba, cdw12: 3, sglLength: 16384 }));
    await settle();
    const r2t = ep.out.find((p) => p.type === T.R2T);
    return { ep, digests, pdu: r2t && h2cData(15, dataFieldsOf(r2t).ttag, 0, new Uint8Array(16384).fill(9), true, digests) };
  }
  const build = [
    () => cmd({ opcode: 0x01, cid: 10, nsid: 1, cdw10: lba, sglType: SGL_ICD, sglLength: 4096 }, new Uint8Array(4096).fill(lba & 0xff)),
    () => cmd({ opcode: 0x02, cid: 11, nsid: 1, cdw10: lba, cdw12: 1, sglLength: 8192 }),
    () => cmd({ opcode: 0x08, cid: 12, nsid: 1, cdw10: lba, cdw12: 3 }),
    () => cmd({ opcode: 0x00, cid: 13, nsid: 1 }),
    () => cmd({ opcode: 0x09, cid: 14, nsid: 1, cdw10: 0, cdw11: 4, sglType: SGL_ICD, sglLength: 16 }, Uint8Array.from({ length: 16 }, (_, i) => (i === 4 ? 2 : i === 8 ? lba & 0xff : 0))),
  ][choice]!;
  return { ep, digests, pdu: build() };
}

function sentCids(bytes: Uint8Array): number[] {
  return bytes.length >= 12 && bytes[0] === T.CapsuleCmd ? [bytes[10]! | (bytes[11]! << 8)] : [];
}

/** Same length and same common header: the probe that follows starts on a PDU boundary. */
function framingIntact(original: Uint8Array, mutated: Uint8Array): boolean {
  return original.length === mutated.length && original.length >= 8 && Buffer.from(original.subarray(0, 8)).equals(Buffer.from(mutated.subarray(0, 8)));
}

function check(run: Run, mutated: Uint8Array, intact: boolean, out: readonly C2HPdu[], context: string): void {
  const { ep } = run;
  assert.is(ep.decoder.pending, 0, `${context}: a partial PDU left the target`);
  for (const p of out) {
    assert.ok([T.ICResp, T.C2HTermReq, T.CapsuleResp, T.C2HData, T.R2T].includes(p.type as 1), `${context}: sent PDU type ${p.type}`);
    assert.ok(p.headerDigestOk && p.dataDigestOk, `${context}: digest of an outgoing PDU`);
  }
  const termIndex = out.findIndex((p) => p.type === T.C2HTermReq);
  if (termIndex >= 0) {
    const term = out[termIndex]!;
    const { fes } = termFieldsOf(term);
    assert.ok(fes >= 1 && fes <= 6, `${context}: FES ${fes}`);
    assert.ok(term.plen >= 24 && term.plen <= 152, `${context}: C2HTermReq PLEN ${term.plen}`);
    assert.is(termIndex, out.length - 1, `${context}: C2HTermReq is the last PDU`);
    assert.ok(ep.closed, `${context}: closed after C2HTermReq`);
    return;
  }
  if (ep.closed) {
    assert.match(ep.connection.closeReason ?? '', /H2CTermReq/, `${context}: closed without a C2HTermReq`);
    return;
  }
  const allowed = new Set([0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, PROBE_CID, ...sentCids(mutated)]);
  for (const p of out) {
    if (p.type === T.CapsuleResp) assert.ok(allowed.has(cqeOf(p).cid), `${context}: response for cid ${cqeOf(p).cid} never sent`);
  }
  const stuck = ep.connection.commandsInFlight - ep.connection.transfersPending;
  assert.ok(stuck <= 4, `${context}: ${stuck} commands neither answered nor waiting for data`);
  const probeAnswered = out.some((p) => p.type === T.CapsuleResp && cqeOf(p).cid === PROBE_CID);
  if (intact) assert.ok(probeAnswered, `${context}: probe not answered; out ${out.map((p) => p.type)}`);
  // Framing changed: the probe may have become part of a PDU the target is still waiting to complete.
  else assert.ok(probeAnswered || ep.connection.bytesBuffered > 0 || out.length > 0, `${context}: nothing answered and nothing pending`);
}

test.before(async () => {
  nqn = (await target.createExport({ volume: 'rbd/fuzz' })).id;
  admin = new Endpoint(target);
  admin.receive(icReq());
  admin.receive(connectCapsule({ qid: 0, sqsize: 31, subnqn: nqn, hostnqn: HOST_NQN }));
  await admin.waitFor(2);
  cntlid = cqeOf(admin.out[1]!).dw0;
  admin.receive(capsuleCmd(sqe({ opcode: 0x7f, fctype: 0x00, cid: 1, cdw11: 0x14, cdw12: 0x00460001 }), undefined));
  await admin.waitFor(3);
});

test(`${TOTAL} mutated PDUs: no crash, every connection closed or answered per spec (seed ${SEED})`, async () => {
  const started = Date.now();
  const stages: Stage[] = ['ic', 'connect', 'admin', 'io', 'io', 'io'];
  let mutatedPdus = 0;
  let terminations = 0;
  while (mutatedPdus < TOTAL) {
    const stage = pick(stages);
    const run = await prepare(stage);
    if (!run.pdu) {
      run.ep.hangUp();
      continue;
    }
    const before = run.ep.out.length;
    const original = run.pdu;
    const mutated = mutate(original);
    const context = `seed ${SEED} pdu #${mutatedPdus} stage ${stage} bytes ${Buffer.from(mutated.subarray(0, 160)).toString('hex')} (${mutated.length} B)`;
    try {
      feed(run.ep, mutated);
      mutatedPdus++;
      if (!run.ep.closed) feed(run.ep, capsuleCmd(sqe({ opcode: stage === 'io' ? 0x00 : 0x18, cid: PROBE_CID, nsid: 1 }), undefined, run.digests));
      await settle();
    } catch (err) {
      assert.unreachable(`${context}: target threw ${(err as Error).stack}`);
    }
    check(run, mutated, framingIntact(original, mutated), run.ep.out.slice(before), context);
    if (run.ep.out.some((p) => p.type === T.C2HTermReq)) terminations++;
    run.ep.hangUp();
  }
  await settle();
  // Every association a fuzzed connection created went away with it: only the long-lived one is left.
  assert.is(target.controllersOf(nqn).length, 1, 'controllers left behind');
  assert.is(target.controllersOf(DISCOVERY_NQN).length, 0, 'discovery controllers left behind');
  const seconds = (Date.now() - started) / 1000;
  console.log(`fuzz: ${mutatedPdus} mutated PDUs in ${seconds.toFixed(1)} s, ${terminations} answered with C2HTermReq (seed ${SEED})`);
});

test.after(async () => {
  admin.hangUp();
  await target.stop();
});

test.run();
