import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FastblockError, ErrorCode, isFastblockError, assert as invariant, AssertionError } from '../../kernel/errors.js';

test('FastblockError carries code and context', () => {
  const err = new FastblockError(ErrorCode.NOT_LEADER, 'not the leader of 1.2a', { pg: '1.2a', leaderHint: 3 });
  assert.is(err.code, 'NOT_LEADER');
  assert.equal(err.context, { pg: '1.2a', leaderHint: 3 });
  assert.ok(err.retriable);
  assert.ok(isFastblockError(err, ErrorCode.NOT_LEADER));
  assert.not.ok(isFastblockError(err, ErrorCode.TIMEOUT));
  assert.not.ok(new FastblockError(ErrorCode.TIMEOUT, 't').retriable);
});

test('assert throws AssertionError with the message', () => {
  assert.throws(() => invariant(false, 'x > 0'), (e: unknown) => e instanceof AssertionError && /x > 0/.test((e as Error).message));
  invariant(true);
});

test.run();
