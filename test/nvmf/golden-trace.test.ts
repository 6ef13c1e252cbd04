/**
 * Replays the host side of a real Linux initiator's session with Linux nvmet (fixtures/
 * nvme-tcp-golden-trace.log: discovery, connect with one I/O queue, 4 KiB and 128 KiB writes,
 * reads, flush, shutdown) into the target, PDU by PDU, and checks every answer's structure against
 * what nvmet sent: PDU type, flags, HLEN, PDO, PLEN, and the CQE's command id, queue id, SQ head and
 * status; for C2HData and R2T the command id, offset and length.
 *
 * The trace holds headers only; data is synthesized (Connect data naming our subsystems, write
 * payloads), and the H2CData's transfer tag is taken from our R2T. One deliberate difference: nvmet
 * advertised ANA, so the host asked for the ANA log page; this target does not, and answers that
 * request with Invalid Log Page.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Endpoint } from './support/endpoint.js';
import { NvmfTarget } from '../../plugins/frontend-nvmf/target.js';
import { DISCOVERY_NQN } from '../../plugins/frontend-nvmf/subsystem/discovery-subsystem.js';
import { MemoryVolumeProvider, type MemoryVolume } from '../support/memory-volume.js';
import { HOST_NQN, T, connectData, cqeOf, dataFieldsOf } from './support/host-pdu.js';

const here = dirname(fileURLToPath(import.meta.url));
const TYPES: Record<string, number> = { ICReq: T.ICReq, ICResp: T.ICResp, CapsuleCmd: T.CapsuleCmd, CapsuleResp: T.CapsuleResp, H2CData: T.H2CData, C2HData: T.C2HData, R2T: T.R2T };

interface TraceLine {
  readonly conn: string;
  readonly h2c: boolean;
  readonly type: number;
  readonly plen: number;
  readonly header: Uint8Array;
}

function loadTrace(): TraceLine[] {
  const text = readFileSync(join(here, 'fixtures', 'nvme-tcp-golden-trace.log'), 'utf8');
  const lines: TraceLine[] = [];
  for (const line of text.split('\n')) {
    const m = /(conn\d+) (H2C|C2H) (\w+) .*plen=(\d+).* hdr=([0-9a-f]+)/.exec(line);
    if (!m) continue;
    lines.push({ conn: m[1]!, h2c: m[2] === 'H2C', type: TYPES[m[3]!]!, plen: Number(m[4]), header: Uint8Array.from(Buffer.from(m[5]!, 'hex')) });
  }
  return lines;
}

/** The traced namespace had 512-byte blocks: the same memory volume, announced with 512-byte blocks. */
class SectorVolumeProvider extends MemoryVolumeProvider {
  override async open(name: string): Promise<MemoryVolume> {
    const volume = await super.open(name);
    Object.defineProperty(volume, 'blockSize', { value: 512 });
    return volume;
  }
}

const u16 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint16(at, true);
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);

test('golden trace: every C2H answer has the structure Linux nvmet gave', async () => {
  const trace = loadTrace();
  assert.ok(trace.length > 130, 'trace parsed');
  const provider = new SectorVolumeProvider(64 * 1024 * 1024);
  provider.create('rbd/golden');
  const target = new NvmfTarget(provider, pino({ level: 'silent' }), { port: 0 });
  const nqn = (await target.createExport({ volume: 'rbd/golden' })).id;

  // Which connections talk to the discovery controller: those that read the discovery log.
  const discoveryConns = new Set(trace.filter((l) => l.h2c && l.type === T.CapsuleCmd && l.header[8] === 0x02 && (u32(l.header, 48) & 0xff) === 0x70).map((l) => l.conn));
  const endpoints = new Map<string, Endpoint>();
  const expectedCount = new Map<string, number>();
  const ioCntlid = new Map<string, number>();
  let lastR2T: { ttag: number } | undefined;
  let ana: { conn: string; cid: number; answered: boolean } | undefined;
  let compared = 0;

  for (const line of trace) {
    let ep = endpoints.get(line.conn);
    if (!ep) {
      ep = new Endpoint(target);
      endpoints.set(line.conn, ep);
      expectedCount.set(line.conn, 0);
    }
    if (line.h2c) {
      const pdu = new Uint8Array(line.plen);
      pdu.set(line.header);
      const isConnect = line.type === T.CapsuleCmd && line.header[8] === 0x7f && line.header[12] === 0x01;
      if (isConnect) {
        const qid = u16(line.header, 8 + 42);
        const admin = qid === 0;
        const subnqn = discoveryConns.has(line.conn) ? DISCOVERY_NQN : nqn;
        pdu.set(connectData({ subnqn, hostnqn: HOST_NQN, cntlid: admin ? 0xffff : ioCntlid.get('nvm') }), line.header[3]!);
      } else if (line.type === T.CapsuleCmd && line.plen > 72) {
        pdu.fill(0x5a, line.header[3]!);
      } else if (line.type === T.H2CData) {
        assert.ok(lastR2T, 'H2CData follows our R2T');
        new DataView(pdu.buffer).setUint16(10, lastR2T.ttag, true);
        pdu.fill(0xa5, line.header[3]!);
      }
      if (line.type === T.CapsuleCmd && line.header[8] === 0x02 && (u32(line.header, 48) & 0xff) === 0x0c) ana = { conn: line.conn, cid: u16(line.header, 10), answered: false };
      ep.connection.receive(pdu);
      continue;
    }
    // The ANA log request: our answer is one CapsuleResp with Invalid Log Page; skip nvmet's data PDU.
    if (line.type === T.C2HData && ana?.conn === line.conn && !ana.answered && u16(line.header, 8) === ana.cid) continue;

    const index = expectedCount.get(line.conn)!;
    expectedCount.set(line.conn, index + 1);
    await ep.waitFor(index + 1);
    const got = ep.out[index]!;
    const where = `${line.conn} C2H #${index} (trace type ${line.type})`;
    assert.is(got.type, line.type, `${where}: type`);
    assert.is(got.hlen, line.header[2], `${where}: hlen`);
    assert.is(got.flags, line.header[1], `${where}: flags`);
    assert.is(got.pdo, line.header[3], `${where}: pdo`);
    if (got.type === T.CapsuleResp) {
      const want = cqeOf({ ...got, header: line.header });
      const cqe = cqeOf(got);
      assert.is(cqe.cid, want.cid, `${where}: cid`);
      assert.is(cqe.sqid, want.sqid, `${where}: sqid`);
      assert.is(cqe.sqhd, want.sqhd, `${where}: sqhd`);
      if (ana?.conn === line.conn && !ana.answered && cqe.cid === ana.cid) {
        assert.is((cqe.status >> 1) & 0xff, 0x09, 'ANA log page: Invalid Log Page');
        ana.answered = true;
      } else {
        assert.is(cqe.status, want.status, `${where}: status`);
      }
      // The admin Connect's answer (the first PDU after ICResp) names the controller the I/O queue joins.
      if (index === 1 && cqe.sqid === 0 && !discoveryConns.has(line.conn)) ioCntlid.set('nvm', cqe.dw0 & 0xffff);
    } else {
      assert.is(got.plen, line.plen, `${where}: plen`);
    }
    if (got.type === T.C2HData || got.type === T.R2T) {
      const mine = dataFieldsOf(got);
      const theirs = dataFieldsOf({ ...got, header: line.header });
      assert.is(mine.cccid, theirs.cccid, `${where}: cccid`);
      assert.is(mine.offset, theirs.offset, `${where}: offset`);
      assert.is(mine.length, theirs.length, `${where}: length`);
      if (got.type === T.R2T) lastR2T = { ttag: mine.ttag };
    }
    compared++;
  }
  assert.ok(compared >= 75, `compared ${compared} answers`);
  assert.ok(ana?.answered, 'the ANA log request was answered');
  // Nothing more was sent than the trace has (the AER stays outstanding, as with nvmet).
  for (const [conn, ep] of endpoints) assert.is(ep.out.length, expectedCount.get(conn), `${conn}: no extra PDUs`);
  // The writes of the trace reached the volume: 4 KiB at LBA 0 and the 128 KiB R2T write at LBA 256.
  const volume = await provider.open('rbd/golden');
  assert.ok((await volume.read(0, 4096)).every((b) => b === 0x5a), 'in-capsule write');
  assert.ok((await volume.read(256 * 512, 128 * 1024)).every((b) => b === 0xa5), 'R2T write');
  await target.stop();
});

test.run();
