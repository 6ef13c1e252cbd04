/**
 * The NVMe/TCP target over real sockets with the test host: association set-up, admin commands,
 * I/O in every data path (in-capsule, R2T, C2HData, SUCCESS flag, digests), error statuses,
 * keep-alive expiry and runtime export management.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { DISCOVERY_NQN } from '../../plugins/frontend-nvmf/subsystem/discovery-subsystem.js';
import { HOST_ID, HOST_NQN, T } from './support/host-pdu.js';
import { startTarget, type StartedTarget } from './support/target.js';
import { TestHost, sc, sct } from './support/test-host.js';
import { MemoryVolumeProvider, type MemoryVolume } from '../support/memory-volume.js';

let t: StartedTarget;

test.before.each(async () => {
  t = await startTarget();
});

test.after.each(async () => {
  await t.stop();
});

async function adminHost(kato = 0, digests = { header: false, data: false }): Promise<{ host: TestHost; cntlid: number }> {
  const host = await TestHost.open(t.port, digests);
  const connected = await host.connectAdmin(t.nqn, kato);
  assert.is(connected.cqe.status, 0, 'admin connect');
  assert.is((await host.enable()).cqe.status, 0);
  return { host, cntlid: connected.cqe.dw0 & 0xffff };
}

async function ioHost(cntlid: number, qid: number, digests = { header: false, data: false }, cattr = 0): Promise<TestHost> {
  const host = await TestHost.open(t.port, digests);
  const r = await host.connectQueue({ qid, sqsize: 127, cntlid, subnqn: t.nqn, hostnqn: HOST_NQN, cattr });
  assert.is(r.cqe.status, 0, `io connect qid ${qid}`);
  assert.is(r.cqe.sqid, qid);
  return host;
}

test('ICResp: PFV 0, CPDA 0, digests echoed, MAXH2CDATA advertised', async () => {
  const host = await TestHost.open(t.port, { header: true, data: true });
  const ic = host.received[0]!;
  assert.is(ic.type, T.ICResp);
  assert.is(ic.plen, 128);
  assert.is(ic.header[11], 3);
  assert.is(host.maxH2CData, 128 * 1024);
  host.close();
});

test('HPDA: C2HData data starts at the alignment the host asked for', async () => {
  const host = await TestHost.open(t.port, { header: false, data: false }, { hpda: 7 });
  assert.is((await host.connectAdmin(t.nqn)).cqe.status, 0);
  await host.enable();
  const reply = await host.identify(1);
  assert.is(reply.cqe.status, 0);
  assert.is(reply.data.length, 4096);
  const c2h = host.received.find((p) => p.type === T.C2HData)!;
  assert.is(c2h.pdo, 32, 'PDO padded to (HPDA + 1) * 4');
  assert.is(c2h.plen, 32 + 4096);
  host.close();
});

test('properties: CAP, VS, CC enable sets CSTS.RDY, shutdown reports complete', async () => {
  const host = await TestHost.open(t.port);
  const connected = await host.connectAdmin(t.nqn);
  assert.is(connected.cqe.status, 0);
  assert.ok((connected.cqe.dw0 & 0xffff) >= 1);
  const cap = await host.propertyGet(0, true);
  assert.is(cap.cqe.dw0 & 0xffff, 127, 'MQES');
  assert.is((cap.cqe.dw1 >> 5) & 1, 1, 'CSS NVM');
  assert.is((await host.propertyGet(0x08, false)).cqe.dw0, 0x00010300);
  assert.is((await host.propertyGet(0x1c, false)).cqe.dw0, 0);
  // Admin commands before enable are a sequence error.
  const early = await host.identify(1);
  assert.is(sc(early.cqe.status), 0x0c);
  await host.enable();
  assert.is((await host.propertyGet(0x1c, false)).cqe.dw0 & 1, 1);
  assert.is((await host.propertyGet(0x14, false)).cqe.dw0, 0x00460001);
  // A 4-byte read of CAP is an invalid field.
  assert.is(sc((await host.propertyGet(0, false)).cqe.status), 0x02);
  await host.propertySet(0x14, 0x00464001);
  await new Promise((r) => setTimeout(r, 20));
  assert.is((await host.propertyGet(0x1c, false)).cqe.dw0 & 0xc, 0x8, 'SHST complete');
  host.close();
});

test('identify controller, namespace, active list, descriptors with a UUID', async () => {
  const { host, cntlid } = await adminHost();
  const ctrl = (await host.identify(1)).data;
  assert.is(ctrl.length, 4096);
  const v = new DataView(ctrl.buffer, ctrl.byteOffset);
  assert.is(v.getUint16(78, true), cntlid);
  assert.is(ctrl[111], 1, 'I/O controller');
  assert.is(v.getUint32(516, true), 1, 'NN');
  assert.is(v.getUint16(520, true) & 0x0c, 0x0c, 'ONCS DSM + write zeroes');
  assert.is(ctrl[525], 0, 'no volatile write cache');
  assert.is(Buffer.from(ctrl.subarray(768, 768 + t.nqn.length)).toString(), t.nqn);
  assert.is(v.getUint32(1792, true), (64 + 8192) / 16, 'IOCCSZ');
  const ns = (await host.identify(0, 1)).data;
  const nv = new DataView(ns.buffer, ns.byteOffset);
  assert.is(Number(nv.getBigUint64(0, true)), (64 * 1024 * 1024) / 4096);
  assert.is((nv.getUint32(128, true) >> 16) & 0xff, 12, 'LBADS 4096');
  const list = (await host.identify(2, 0)).data;
  assert.is(new DataView(list.buffer, list.byteOffset).getUint32(0, true), 1);
  assert.is(new DataView(list.buffer, list.byteOffset).getUint32(4, true), 0);
  const desc = (await host.identify(3, 1)).data;
  const types: number[] = [];
  for (let at = 0; desc[at] !== 0; at += 4 + desc[at + 1]!) types.push(desc[at]!);
  assert.equal(types, [2, 3, 4], 'NGUID, UUID, CSI');
  assert.is(desc[20 + 1], 16, 'UUID length');
  // Unknown namespace, unknown CNS.
  assert.is(sc((await host.identify(0, 7)).cqe.status), 0x0b);
  assert.is(sc((await host.identify(0x10)).cqe.status), 0x02);
  host.close();
});

test('unsupported admin and I/O opcodes: Invalid Opcode', async () => {
  const { host, cntlid } = await adminHost();
  const r = await host.command({ opcode: 0x80 });
  assert.is(sct(r.cqe.status), 0);
  assert.is(sc(r.cqe.status), 0x01);
  assert.ok(r.cqe.status & 0x8000, 'DNR');
  const io = await ioHost(cntlid, 1);
  assert.is(sc((await io.command({ opcode: 0x05, nsid: 1 })).cqe.status), 0x01);
  io.close();
  host.close();
});

test('features: number of queues, async event config, keep alive timer', async () => {
  const { host, cntlid } = await adminHost(5000);
  const nq = await host.command({ opcode: 0x09, cdw10: 0x07, cdw11: (15 << 16) | 15 });
  assert.is(nq.cqe.dw0, (7 << 16) | 7, 'granted 8 of 16');
  assert.is((await host.command({ opcode: 0x0a, cdw10: 0x07 })).cqe.dw0, (7 << 16) | 7);
  assert.is((await host.command({ opcode: 0x09, cdw10: 0x0b, cdw11: 0x900 })).cqe.dw0, 0x900);
  assert.is((await host.command({ opcode: 0x0a, cdw10: 0x0b })).cqe.dw0, 0x900);
  assert.is((await host.command({ opcode: 0x0a, cdw10: 0x0f })).cqe.dw0, 5000);
  assert.is((await host.command({ opcode: 0x09, cdw10: 0x0f, cdw11: 7000 })).cqe.status, 0);
  assert.is((await host.command({ opcode: 0x0a, cdw10: 0x0f })).cqe.dw0, 7000);
  assert.is(sc((await host.command({ opcode: 0x0a, cdw10: 0x06 })).cqe.status), 0x02, 'no write cache feature');
  assert.is((await host.command({ opcode: 0x18 })).cqe.status, 0, 'keep alive');
  const io = await ioHost(cntlid, 1);
  assert.is(sc((await host.command({ opcode: 0x09, cdw10: 0x07, cdw11: 0 })).cqe.status), 0x0c, 'number of queues is fixed once I/O queues exist');
  io.close();
  host.close();
});

test('log pages: error, SMART counts I/O, firmware slot, commands supported', async () => {
  const { host, cntlid } = await adminHost();
  const io = await ioHost(cntlid, 1);
  await io.write(1, 0, randomBytes(8192));
  await io.read(1, 0, 2);
  const logPage = (lid: number, bytes: number) => host.command({ opcode: 0x02, nsid: 0xffffffff, cdw10: lid | ((bytes / 4 - 1) << 16) }, undefined, bytes);
  const smart = (await logPage(0x02, 512)).data;
  const sv = new DataView(smart.buffer, smart.byteOffset);
  assert.is(Number(sv.getBigUint64(64, true)), 1, 'host read commands');
  assert.is(Number(sv.getBigUint64(80, true)), 1, 'host write commands');
  assert.is(Number(sv.getBigUint64(48, true)), 1, 'data units written');
  const fw = (await logPage(0x03, 512)).data;
  assert.is(fw[0], 1);
  // One failure on the admin queue lands in the error log.
  await host.identify(0x10);
  const err = (await logPage(0x01, 64 * 64)).data;
  const ev = new DataView(err.buffer, err.byteOffset);
  assert.is(Number(ev.getBigUint64(0, true)), 1, 'error count');
  assert.is((ev.getUint16(12, true) >> 1) & 0xff, 0x02);
  const effects = (await logPage(0x05, 4096)).data;
  assert.is(effects[0x06 * 4], 1, 'identify supported');
  assert.is(effects[1024 + 0x01 * 4], 3, 'write changes content');
  assert.is((await logPage(0x0c, 4096)).cqe.status >> 1 & 0xff, 0x09, 'ANA log page is not supported');
  io.close();
  host.close();
});

test('I/O: in-capsule and R2T writes, reads, multiple H2CData PDUs, data visible to the volume', async () => {
  const { host, cntlid } = await adminHost();
  const io = await ioHost(cntlid, 1);
  const small = randomBytes(4096);
  const large = randomBytes(1024 * 1024);
  assert.is((await io.write(1, 10, small)).cqe.status, 0);
  assert.is((await io.write(1, 100, large)).cqe.status, 0);
  assert.ok(io.received.some((p) => p.type === T.R2T), 'large write solicited with R2T');
  const back = await io.read(1, 100, 256);
  assert.is(back.cqe.status, 0);
  assert.ok(Buffer.from(back.data).equals(large));
  const volume = await t.provider.open('rbd/disk0');
  assert.ok(Buffer.from(await volume.read(10 * 4096, 4096)).equals(small));
  assert.ok(Buffer.from(await volume.read(100 * 4096, large.length)).equals(large));
  io.close();
  host.close();
});

test('I/O: many commands in flight complete, out of order where the volume allows, on two queues', async () => {
  const { host, cntlid } = await adminHost();
  const q1 = await ioHost(cntlid, 1);
  const q2 = await ioHost(cntlid, 2);
  const blocks = Array.from({ length: 64 }, () => randomBytes(4096));
  await Promise.all(blocks.map((b, i) => (i % 2 ? q1 : q2).write(1, i, b)));
  const reads = await Promise.all(blocks.map((_, i) => (i % 2 ? q2 : q1).read(1, i, 1)));
  reads.forEach((r, i) => assert.ok(Buffer.from(r.data).equals(blocks[i]!), `block ${i}`));
  // Disconnect deletes the queue: nothing more runs on it, and its id can be connected again.
  assert.is((await q2.command({ opcode: 0x7f, fctype: 0x08 })).cqe.status, 0);
  assert.is(sc((await q2.read(1, 0, 1)).cqe.status), 0x0c);
  const again = await ioHost(cntlid, 2);
  assert.is((await again.read(1, 0, 1)).cqe.status, 0);
  again.close();
  q1.close();
  q2.close();
  host.close();
});

/** Reads of block 0 take 100 ms: lets a test see later commands overtake an earlier one. */
class SlowBlockZero extends MemoryVolumeProvider {
  override async open(name: string): Promise<MemoryVolume> {
    const volume = await super.open(name);
    const read = volume.read.bind(volume);
    volume.read = async (offset, length, into) => {
      if (offset === 0) await new Promise((r) => setTimeout(r, 100));
      return read(offset, length, into);
    };
    return volume;
  }
}

test('I/O: a slow command is overtaken by later ones on the same queue (out-of-order completion)', async () => {
  await t.stop();
  t = await startTarget({}, new SlowBlockZero(64 * 1024 * 1024));
  const { host, cntlid } = await adminHost();
  const io = await ioHost(cntlid, 1);
  const order: number[] = [];
  await Promise.all([0, 1, 2, 3].map((lba) => io.read(1, lba, 1).then(() => order.push(lba))));
  assert.is(order[3], 0, `completion order ${order}`);
  io.close();
  host.close();
});

test('I/O: flush, write zeroes, deallocate read back as zeroes; range and length errors', async () => {
  const { host, cntlid } = await adminHost();
  const io = await ioHost(cntlid, 1);
  await io.write(1, 0, randomBytes(16 * 4096));
  assert.is((await io.command({ opcode: 0x00, nsid: 1 })).cqe.status, 0);
  assert.is((await io.command({ opcode: 0x08, nsid: 1, cdw10: 2, cdw12: 1 })).cqe.status, 0);
  const ranges = new Uint8Array(32);
  const rv = new DataView(ranges.buffer);
  rv.setUint32(4, 4, true);
  rv.setBigUint64(8, 8n, true);
  rv.setUint32(16 + 4, 1, true);
  rv.setBigUint64(16 + 8, 15n, true);
  assert.is((await io.command({ opcode: 0x09, nsid: 1, cdw10: 1, cdw11: 1 << 2 }, ranges)).cqe.status, 0);
  const back = (await io.read(1, 0, 16)).data;
  const zero = (from: number, n: number) => back.subarray(from * 4096, (from + n) * 4096).every((b) => b === 0);
  assert.ok(zero(2, 2), 'write zeroes');
  assert.ok(zero(8, 4), 'deallocated range 1');
  assert.ok(zero(15, 1), 'deallocated range 2');
  assert.not.ok(zero(4, 4));
  const blocks = (64 * 1024 * 1024) / 4096;
  assert.is(sc((await io.read(1, blocks - 1, 2)).cqe.status), 0x80, 'LBA out of range');
  assert.is(sc((await io.command({ opcode: 0x02, nsid: 1, cdw10: 0, cdw12: 0 }, undefined, 8192)).cqe.status), 0x0f, 'SGL length mismatch');
  assert.is(sc((await io.read(2, 0, 1)).cqe.status), 0x0b, 'no namespace 2');
  io.close();
  host.close();
});

test('header and data digests on every PDU, both directions', async () => {
  const digests = { header: true, data: true };
  const { host, cntlid } = await adminHost(0, digests);
  const io = await ioHost(cntlid, 1, digests);
  const data = randomBytes(256 * 1024);
  assert.is((await io.write(1, 0, data)).cqe.status, 0);
  const back = await io.read(1, 0, 64);
  assert.ok(Buffer.from(back.data).equals(data));
  for (const p of [...io.received, ...host.received]) {
    assert.ok(p.headerDigestOk && p.dataDigestOk, `digests of PDU type ${p.type}`);
    if (p.type !== T.ICResp) assert.ok(p.flags & 1, 'HDGSTF set');
  }
  io.close();
  host.close();
});

test('C2HData with SUCCESS replaces the response when the host disabled SQ flow control', async () => {
  const { host, cntlid } = await adminHost();
  const io = await ioHost(cntlid, 1, { header: false, data: false }, 0x04);
  await io.write(1, 0, randomBytes(4096));
  const r = await io.read(1, 0, 1);
  assert.ok(r.viaSuccessFlag);
  io.close();
  host.close();
});

test('Connect checks: I/O queue host NQN and host id against the admin queue, unknown controller, bad sizes', async () => {
  const { host, cntlid } = await adminHost();
  const probe = async (fields: Partial<Parameters<TestHost['connectQueue']>[0]>) => {
    const h = await TestHost.open(t.port);
    const r = await h.connectQueue({ qid: 1, sqsize: 127, cntlid, subnqn: t.nqn, hostnqn: HOST_NQN, ...fields });
    h.close();
    return r.cqe;
  };
  const otherHost = await probe({ hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:someone-else' });
  assert.is(sct(otherHost.status), 1);
  assert.is(sc(otherHost.status), 0x82);
  assert.is(otherHost.dw0, (1 << 16) | 512, 'IATTR data, IPO hostnqn');
  const otherId = await probe({ hostId: Uint8Array.from(HOST_ID).reverse() });
  assert.is(otherId.dw0, (1 << 16) | 0, 'IPO hostid');
  assert.is((await probe({ cntlid: cntlid + 100 })).dw0, (1 << 16) | 16, 'IPO cntlid');
  assert.is((await probe({ subnqn: 'nqn.2024-01.io.fastblock:nope' })).dw0, (1 << 16) | 256, 'IPO subnqn');
  assert.is((await probe({ sqsize: 4096 })).dw0, 44, 'IPO sqsize');
  assert.is((await probe({ qid: 99 })).dw0, 42, 'IPO qid');
  assert.is(sc((await probe({ recfmt: 1 })).status), 0x80, 'incompatible format');
  const fixed = await TestHost.open(t.port);
  assert.is(sc((await fixed.connectQueue({ qid: 0, sqsize: 31, cntlid: 5, subnqn: t.nqn, hostnqn: HOST_NQN })).cqe.status), 0x82);
  fixed.close();
  // A command before Connect is a sequence error.
  const early = await TestHost.open(t.port);
  assert.is(sc((await early.identify(1)).cqe.status), 0x0c);
  early.close();
  host.close();
});

test('controller reset (CC.EN 1 -> 0) closes the I/O queues and aborts event requests; AER limit', async () => {
  const { host, cntlid } = await adminHost();
  const io = await ioHost(cntlid, 1);
  const events = [1, 2, 3, 4].map(() => host.command({ opcode: 0x0c }));
  const fifth = await host.command({ opcode: 0x0c });
  assert.is(sct(fifth.cqe.status), 1);
  assert.is(sc(fifth.cqe.status), 0x05, 'Asynchronous Event Request Limit Exceeded');
  assert.is((await host.command({ opcode: 0x08, cdw10: 1 })).cqe.dw0 & 1, 1, 'Abort: not aborted');
  assert.is((await host.propertySet(0x14, 0x00460000)).cqe.status, 0);
  await io.closed;
  for (const event of await Promise.all(events)) assert.is(sc(event.cqe.status), 0x07, 'aborted by the reset');
  assert.is((await host.propertyGet(0x1c, false)).cqe.dw0 & 1, 0, 'not ready');
  await host.enable();
  const again = await ioHost(cntlid, 1);
  assert.is((await again.write(1, 0, new Uint8Array(4096), 4096, true)).cqe.status, 0, 'a FUA write is accepted after re-enable');
  const volume = await t.provider.open('rbd/disk0');
  assert.ok((await volume.read(0, 4096)).every((b) => b === 0));
  again.close();
  host.close();
});

test('dynamic controller ids: two associations get different ids; closing the admin queue tears its I/O queues down', async () => {
  const a = await adminHost();
  const b = await adminHost();
  assert.is.not(a.cntlid, b.cntlid);
  assert.is(t.target.listExports()[0]!.clients, 2);
  const io = await ioHost(a.cntlid, 1);
  a.host.close();
  await io.closed;
  assert.is(t.target.listExports()[0]!.clients, 1);
  b.host.close();
});

test('keep alive: an association without Keep Alive is torn down after KATO; the export stays', async () => {
  const { host, cntlid } = await adminHost(1000);
  const io = await ioHost(cntlid, 1);
  const started = Date.now();
  await Promise.all([host.closed, io.closed]);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 900 && elapsed < 4000, `torn down after ${elapsed} ms`);
  assert.is(t.target.listExports().length, 1);
  assert.is(t.target.listExports()[0]!.clients, 0);
  // Keep Alive every 400 ms keeps a second association alive past its KATO.
  const kept = await adminHost(1000);
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 400));
    assert.is((await kept.host.command({ opcode: 0x18 })).cqe.status, 0);
  }
  kept.host.close();
});

test('resize: the namespace follows its volume; a Namespace Attribute Changed notice and log page 0x04, once until read', async () => {
  const { host, cntlid } = await adminHost();
  const io = await ioHost(cntlid, 1);
  const ctrl = (await host.identify(1)).data;
  assert.is(new DataView(ctrl.buffer, ctrl.byteOffset).getUint32(92, true) & (1 << 8), 1 << 8, 'OAES namespace attribute notices');
  assert.is((await host.command({ opcode: 0x09, cdw10: 0x0b, cdw11: 1 << 8 })).cqe.status, 0);
  const log = async (retain = false) => {
    const page = (await host.command({ opcode: 0x02, cdw10: 0x04 | (retain ? 1 << 15 : 0) | ((4096 / 4 - 1) << 16) }, undefined, 4096)).data;
    const v = new DataView(page.buffer, page.byteOffset);
    return [v.getUint32(0, true), v.getUint32(4, true)];
  };
  const nsze = async () => Number(new DataView((await host.identify(0, 1)).data.buffer).getBigUint64(0, true));
  const oldBlocks = (64 * 1024 * 1024) / 4096;
  assert.is(sc((await io.read(1, oldBlocks, 1)).cqe.status), 0x80, 'past the end before the resize');

  const aer = host.command({ opcode: 0x0c });
  const volume = await t.provider.open('rbd/disk0');
  volume.resize(96 * 1024 * 1024);
  assert.is((await aer).cqe.dw0, 0x00040002, 'notice, namespace attribute changed, log page 0x04');
  assert.is(await nsze(), (96 * 1024 * 1024) / 4096);
  assert.equal(await log(true), [1, 0], 'namespace 1 changed (retained)');
  assert.equal(await log(), [1, 0], 'still listed after a read with RAE');
  assert.equal(await log(), [0, 0], 'cleared by the read without RAE');
  const data = randomBytes(4096);
  assert.is((await io.write(1, oldBlocks, data)).cqe.status, 0, 'the new blocks take writes');
  assert.equal(Buffer.from((await io.read(1, oldBlocks, 1)).data), data);

  // A second change after the log was read is noticed again; a shrink takes the end away.
  const again = host.command({ opcode: 0x0c });
  volume.resize(32 * 1024 * 1024);
  assert.is((await again).cqe.dw0, 0x00040002);
  assert.is(await nsze(), (32 * 1024 * 1024) / 4096);
  assert.is(sc((await io.read(1, (32 * 1024 * 1024) / 4096, 1)).cqe.status), 0x80, 'past the new end');
  io.close();
  host.close();
});

test('discovery controller: log lists the discovery subsystem and every export; change notice on create', async () => {
  const host = await TestHost.open(t.port);
  assert.is((await host.connectAdmin(DISCOVERY_NQN)).cqe.status, 0);
  await host.enable();
  const ctrl = (await host.identify(1)).data;
  assert.is(ctrl[111], 2, 'discovery controller type');
  await host.command({ opcode: 0x09, cdw10: 0x0b, cdw11: 1 << 31 });
  const aer = host.command({ opcode: 0x0c });
  const log = async () => (await host.command({ opcode: 0x02, cdw10: 0x70 | ((3 * 1024) / 4 - 1) << 16 }, undefined, 3 * 1024)).data;
  const first = await log();
  const v = new DataView(first.buffer, first.byteOffset);
  assert.is(Number(v.getBigUint64(8, true)), 2);
  const entry = first.subarray(2048);
  assert.is(entry[2], 2, 'NVM subsystem');
  assert.is(Buffer.from(entry.subarray(256, 256 + t.nqn.length)).toString(), t.nqn);
  assert.is(Buffer.from(entry.subarray(32, 32 + String(t.port).length)).toString(), String(t.port));
  t.provider.create('rbd/disk1');
  await t.target.createExport({ volume: 'rbd/disk1', options: { nqn: 'nqn.2024-01.io.example:second' } });
  const event = await aer;
  assert.is(event.cqe.dw0, 0x0070f002);
  const second = await log();
  assert.is(Number(new DataView(second.buffer, second.byteOffset).getBigUint64(8, true)), 3);
  assert.is(sc((await host.command({ opcode: 0x02, cdw10: 0x02 | (127 << 16) }, undefined, 512)).cqe.status), 0x09, 'only the discovery log');
  host.close();
});

async function rejects(run: () => Promise<unknown>, pattern?: RegExp): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (pattern) assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable('expected a rejection');
}

test('exports: NQN validation, duplicates, removal closes its associations', async () => {
  await rejects(() => t.target.createExport({ volume: 'rbd/disk0', options: { nqn: 'bad' } }));
  await rejects(() => t.target.createExport({ volume: 'rbd/disk0' }), /already exists/);
  await rejects(() => t.target.createExport({ volume: 'rbd/missing', options: { nqn: 'nqn.2024-01.x:y' } }));
  const { host } = await adminHost();
  await t.target.removeExport(t.nqn);
  await host.closed;
  assert.is(t.target.listExports().length, 0);
  await rejects(() => t.target.removeExport(t.nqn));
});

test.run();
