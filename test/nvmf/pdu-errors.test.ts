/**
 * Bad PDUs: each is answered with a C2HTermReq carrying the fatal error status and the offset of
 * the first wrong field (checked in the spec's order), quoting the offending header, and the
 * connection closes. A wrong command (not a wrong PDU) gets an error status instead and the
 * connection carries on; a data digest error fails only its command.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { NvmfTarget } from '../../plugins/frontend-nvmf/target.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';
import { Endpoint, settle } from './support/endpoint.js';
import {
  HOST_NQN,
  SGL_ICD,
  SGL_TRANSPORT,
  T,
  capsuleCmd,
  connectCapsule,
  cqeOf,
  dataFieldsOf,
  h2cData,
  h2cTermReq,
  icReq,
  sqe,
  termFieldsOf,
  type Digests,
} from './support/host-pdu.js';

const provider = new MemoryVolumeProvider(16 * 1024 * 1024);
provider.create('rbd/err');
const target = new NvmfTarget(provider, pino({ level: 'silent' }), { port: 0 });
let nqn = '';
let cntlid = 0;
let admin: Endpoint;

test.before(async () => {
  nqn = (await target.createExport({ volume: 'rbd/err' })).id;
  admin = new Endpoint(target);
  admin.receive(icReq());
  admin.receive(connectCapsule({ qid: 0, sqsize: 31, subnqn: nqn, hostnqn: HOST_NQN }));
  await admin.waitFor(2); // a host waits for Connect's answer before anything else
  admin.receive(capsuleCmd(sqe({ opcode: 0x7f, fctype: 0x00, cid: 1, cdw11: 0x14, cdw12: 0x00460001 }), undefined));
  await admin.waitFor(3);
  cntlid = cqeOf(admin.out[1]!).dw0;
});

test.after(() => admin.hangUp());

/** A connection after ICReq/ICResp (and, with `io`, connected as I/O queue 1). */
async function established(io = false, digests: Digests = { header: false, data: false }): Promise<Endpoint> {
  const ep = new Endpoint(target);
  ep.receive(icReq({ dgst: (digests.header ? 1 : 0) | (digests.data ? 2 : 0) }));
  if (io) {
    ep.receive(connectCapsule({ qid: 1, sqsize: 127, cntlid, subnqn: nqn, hostnqn: HOST_NQN }, digests));
    await ep.waitFor(2);
    assert.is(cqeOf(ep.out[1]!).status, 0, 'I/O connect');
  }
  await settle();
  return ep;
}

async function expectTerm(ep: Endpoint, bad: Uint8Array, fes: number, fei: number): Promise<void> {
  const before = ep.out.length;
  ep.receive(bad);
  await settle();
  const last = ep.out[ep.out.length - 1]!;
  assert.ok(ep.out.length > before, 'an answer');
  assert.is(last.type, T.C2HTermReq, 'C2HTermReq');
  assert.equal(termFieldsOf(last), { fes, fei });
  assert.ok(last.plen <= 152 && last.plen >= 24, 'PLEN within [24, 152]');
  const quoted = last.data;
  assert.ok(quoted.length > 0 && Buffer.from(quoted).equals(Buffer.from(bad.subarray(0, quoted.length))), 'quotes the offending header');
  assert.ok(ep.closed, 'closed');
  ep.hangUp();
}

function withByte(pdu: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = Uint8Array.from(pdu);
  copy[offset] = value;
  return copy;
}

function withU32(pdu: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = Uint8Array.from(pdu);
  new DataView(copy.buffer).setUint32(offset, value, true);
  return copy;
}

const identify = (cid: number) => capsuleCmd(sqe({ opcode: 0x06, cid, cdw10: 1, sglLength: 4096 }), undefined);

test('PDU type: unknown, controller-to-host, ICReq twice, capsule before ICReq', async () => {
  await expectTerm(await established(), withByte(identify(5), 0, 0x08), 1, 0);
  await expectTerm(await established(), withByte(identify(5), 0, T.CapsuleResp), 1, 0);
  await expectTerm(await established(), icReq(), 2, 0);
  await expectTerm(new Endpoint(target), identify(5), 2, 0);
});

test('ICReq parameters: PFV, HPDA', async () => {
  await expectTerm(new Endpoint(target), icReq({ pfv: 1 }), 6, 8);
  await expectTerm(new Endpoint(target), icReq({ hpda: 32 }), 6, 10);
  await expectTerm(new Endpoint(target), withByte(icReq(), 2, 127), 1, 2);
  await expectTerm(new Endpoint(target), withU32(icReq(), 4, 129), 1, 4);
});

test('flags, HLEN, PDO, PLEN in that order', async () => {
  await expectTerm(await established(), withByte(identify(5), 1, 0x04), 1, 1);
  await expectTerm(await established(), withByte(identify(5), 1, 0x01), 1, 1); // header digest not negotiated
  // Flags and HLEN both wrong: flags is reported (lowest offset first).
  await expectTerm(await established(), withByte(withByte(identify(5), 1, 0x10), 2, 80), 1, 1);
  await expectTerm(await established(), withByte(identify(5), 2, 80), 1, 2);
  const withData = capsuleCmd(sqe({ opcode: 0x01, cid: 5, nsid: 1, sglType: SGL_ICD, sglLength: 4096 }), new Uint8Array(4096));
  await expectTerm(await established(true), withByte(withData, 3, 74), 1, 3);
  await expectTerm(await established(true), withByte(withData, 3, 8), 1, 3);
  await expectTerm(await established(), withU32(identify(5), 4, 40), 1, 4);
});

test('in-capsule data beyond the capsule size: data transfer limit exceeded', async () => {
  const big = capsuleCmd(sqe({ opcode: 0x01, cid: 5, nsid: 1, sglType: SGL_ICD, sglLength: 16384 }), new Uint8Array(16384));
  await expectTerm(await established(true), big, 5, 0);
});

test('header digest error', async () => {
  const digests = { header: true, data: false };
  const ep = await established(false, digests);
  const good = capsuleCmd(sqe({ opcode: 0x06, cid: 5, cdw10: 1, sglLength: 4096 }), undefined, digests);
  await expectTerm(ep, withByte(good, 72, good[72]! ^ 0xff), 3, 0);
});

test('data digest error fails the command with Transient Transport Error; the connection lives on', async () => {
  const digests = { header: true, data: true };
  const ep = await established(true, digests);
  const write = capsuleCmd(sqe({ opcode: 0x01, cid: 9, nsid: 1, sglType: SGL_ICD, sglLength: 4096 }), new Uint8Array(4096).fill(7), digests);
  ep.receive(withByte(write, write.length - 1, write[write.length - 1]! ^ 1));
  await settle();
  const resp = ep.out[ep.out.length - 1]!;
  assert.is(resp.type, T.CapsuleResp);
  assert.is((cqeOf(resp).status >> 1) & 0xff, 0x22);
  assert.not.ok(ep.closed);
  ep.receive(capsuleCmd(sqe({ opcode: 0x02, cid: 10, nsid: 1, sglLength: 4096 }), undefined, digests));
  await settle();
  assert.is(ep.out[ep.out.length - 1]!.type, T.CapsuleResp);
  assert.is(cqeOf(ep.out[ep.out.length - 1]!).status, 0, 'read after the failed write works');
  ep.hangUp();
});

async function afterR2T(cid: number, length: number): Promise<{ ep: Endpoint; ttag: number }> {
  const ep = await established(true);
  ep.receive(capsuleCmd(sqe({ opcode: 0x01, cid, nsid: 1, cdw12: length / 4096 - 1, sglType: SGL_TRANSPORT, sglLength: length }), undefined));
  await settle();
  const r2t = ep.out[ep.out.length - 1]!;
  assert.is(r2t.type, T.R2T);
  assert.is(dataFieldsOf(r2t).length, length);
  return { ep, ttag: dataFieldsOf(r2t).ttag };
}

test('H2CData: unknown tag, wrong command id, out of range, out of sequence, LAST_PDU wrong', async () => {
  let s = await afterR2T(7, 16384);
  await expectTerm(s.ep, h2cData(7, s.ttag + 1, 0, new Uint8Array(16384), true), 1, 10);
  s = await afterR2T(7, 16384);
  await expectTerm(s.ep, h2cData(8, s.ttag, 0, new Uint8Array(16384), true), 1, 8);
  s = await afterR2T(7, 16384);
  await expectTerm(s.ep, h2cData(7, s.ttag, 8192, new Uint8Array(16384), true), 4, 0);
  s = await afterR2T(7, 16384);
  await expectTerm(s.ep, h2cData(7, s.ttag, 4096, new Uint8Array(4096), false), 2, 0);
  s = await afterR2T(7, 16384);
  await expectTerm(s.ep, h2cData(7, s.ttag, 0, new Uint8Array(16384), false), 2, 0);
  s = await afterR2T(7, 16384);
  await expectTerm(s.ep, withU32(h2cData(7, s.ttag, 0, new Uint8Array(16384), true), 16, 8192), 1, 16);
  // Split correctly over two PDUs: accepted.
  s = await afterR2T(7, 16384);
  s.ep.receive(h2cData(7, s.ttag, 0, new Uint8Array(8192), false));
  s.ep.receive(h2cData(7, s.ttag, 8192, new Uint8Array(8192), true));
  await settle();
  assert.is(cqeOf(s.ep.out[s.ep.out.length - 1]!).status, 0);
  s.ep.hangUp();
});

test('H2CTermReq closes without an answer; a bad command is an error status, not a termination', async () => {
  const ep = await established(true);
  const before = ep.out.length;
  ep.receive(h2cTermReq(1));
  await settle();
  assert.ok(ep.closed);
  assert.is(ep.out.length, before);
  const ok = await established(true);
  ok.receive(capsuleCmd(sqe({ opcode: 0x02, cid: 3, nsid: 1, sglType: SGL_ICD, sglLength: 4096 }), undefined));
  ok.receive(capsuleCmd(sqe({ opcode: 0x02, cid: 4, nsid: 1, sglType: 0x20, sglLength: 4096 }), undefined));
  ok.receive(capsuleCmd(sqe({ opcode: 0x02, cid: 5, nsid: 1, psdt: 0, sglLength: 4096 }), undefined));
  await settle();
  const statuses = ok.out.slice(-3).map((p) => (cqeOf(p).status >> 1) & 0xff);
  assert.equal(statuses, [0x11, 0x11, 0x02]);
  assert.not.ok(ok.closed);
  ok.hangUp();
});

test('more commands than queue entries: the excess is refused, the rest served', async () => {
  const ep = await established(true);
  const before = ep.out.length;
  const burst = Array.from({ length: 200 }, (_, i) => capsuleCmd(sqe({ opcode: 0x02, cid: 1000 + i, nsid: 1, sglLength: 4096 }), undefined));
  ep.receive(Buffer.concat(burst));
  await settle();
  const responses = ep.out.slice(before).filter((p) => p.type === T.CapsuleResp).map(cqeOf);
  assert.is(responses.length, 200);
  assert.is(responses.filter((c) => c.status === 0).length, 128, 'queue size 128');
  assert.is(responses.filter((c) => ((c.status >> 1) & 0xff) === 0x0c).length, 72);
  ep.hangUp();
});

test('two Connects pipelined on one queue: the second is refused, one controller exists', async () => {
  const ep = new Endpoint(target);
  ep.receive(icReq());
  const before = target.controllersOf(nqn).length;
  ep.receive(Buffer.concat([connectCapsule({ cid: 1, qid: 0, sqsize: 31, subnqn: nqn, hostnqn: HOST_NQN }), connectCapsule({ cid: 2, qid: 0, sqsize: 31, subnqn: nqn, hostnqn: HOST_NQN })]));
  await settle();
  const statuses = ep.out.filter((p) => p.type === T.CapsuleResp).map((p) => [cqeOf(p).cid, (cqeOf(p).status >> 1) & 0xff]);
  assert.equal(statuses.sort(), [[1, 0], [2, 0x0c]]);
  assert.is(target.controllersOf(nqn).length, before + 1);
  ep.hangUp();
  await settle();
  assert.is(target.controllersOf(nqn).length, before);
});

test('a PDU split into single bytes is the same PDU', async () => {
  const ep = await established(true);
  const write = capsuleCmd(sqe({ opcode: 0x01, cid: 9, nsid: 1, sglType: SGL_ICD, sglLength: 4096 }), new Uint8Array(4096).fill(3));
  for (const byte of write) ep.receive(Uint8Array.of(byte));
  await settle();
  assert.is(cqeOf(ep.out[ep.out.length - 1]!).status, 0);
  ep.hangUp();
});

test.run();
