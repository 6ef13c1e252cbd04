// The write-back log file on its own: its ring as a shared mapping of the file (the kernel addon's
// mmapShared) and as a copy written with pwrite. Either way a record is in the file once append()
// returns, with no close or flush, and either kind of log reads back what the other wrote.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEADER_BYTES, RECORD_HEADER, RecordKind, WriteBackLog } from '../../../kernel/block/write-back-log.js';
import { kernelAddon } from '../../../kernel/native.js';

const MiB = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), 'fastblock-wblog-'));
let made = 0;
const pathOf = (): string => join(dir, `log-${made++}.wblog`);

function block(fill: number): Uint8Array {
  return new Uint8Array(4096).fill(fill);
}

for (const map of [true, false]) {
  const mode = map ? 'mapped' : 'pwrite';
  test(`${mode}: an appended record is in the file before anything else happens`, () => {
    if (map && !kernelAddon?.mmapShared) {
      console.log('SKIP mapped mode: the kernel addon (npm run build) has no mmapShared');
      return;
    }
    const path = pathOf();
    const { log } = WriteBackLog.open(path, 'rbd/a', 1 * MiB, { map });
    assert.is(log.mapped, map);
    const first = log.append(0, 1, RecordKind.WRITE, 8192, 4096, [block(0xab)]);
    const second = log.append(first.next, first.seq + 1, RecordKind.DISCARD, 0, 65536, undefined);
    const file = readFileSync(path);
    assert.is(file[HEADER_BYTES + first.dataAt], 0xab);
    assert.is(file[HEADER_BYTES + first.dataAt + 4095], 0xab);
    assert.is(file.readUInt32LE(HEADER_BYTES + first.next + 4), RecordKind.DISCARD);
    assert.is(second.next, first.next + RECORD_HEADER);
    // The record's data the write-back sends is a view of the ring, the file's bytes when mapped.
    assert.equal(log.ring.subarray(first.dataAt, first.dataAt + 4096), Buffer.from(block(0xab)));
    log.close();
  });

  test(`${mode}: a log written one way is replayed the other way, in order`, () => {
    if (!kernelAddon?.mmapShared) {
      console.log('SKIP: the kernel addon (npm run build) has no mmapShared');
      return;
    }
    const path = pathOf();
    const { log } = WriteBackLog.open(path, 'rbd/b', 1 * MiB, { map });
    let at = 0;
    let seq = 1;
    for (let i = 0; i < 300; i++) {
      // 300 records of 4 KiB wrap a 1 MiB ring (a PAD record where one does not fit). The ones
      // before the header's tail may be overwritten: the log is a ring.
      const written = log.append(at, seq, RecordKind.WRITE, i * 4096, 4096, [block(i & 0xff)]);
      at = written.next;
      seq = written.seq + 1;
      if (i === 200) log.writeHeader(at, seq);
    }
    log.close();
    const { log: again, state } = WriteBackLog.open(path, 'rbd/b', 1 * MiB, { map: !map });
    assert.is(again.mapped, !map && kernelAddon?.mmapShared !== undefined);
    assert.is(state.head, at);
    assert.is(state.nextSeq, seq);
    assert.is(state.records.length, 300 - 201);
    for (const [n, record] of state.records.entries()) {
      const i = 201 + n;
      assert.is(record.offset, i * 4096);
      assert.is(record.data![0], i & 0xff);
    }
    again.close();
  });
}

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
