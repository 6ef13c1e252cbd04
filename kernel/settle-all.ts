/**
 * Waits for every promise to settle, then fails with the first failure (the first to happen),
 * if any. Promise.all rejects at the first failure while the others still run: a caller then
 * reuses buffers still being sent, counts work done that is still landing, or retries what may
 * land after its retry.
 */
export function settleAll(promises: readonly Promise<unknown>[]): Promise<void> {
  if (promises.length === 1) return promises[0]!.then(() => undefined);
  let failed = false;
  let failure: unknown;
  const noted = (err: unknown): void => {
    if (failed) return;
    failed = true;
    failure = err;
  };
  return Promise.all(promises.map((p) => p.catch(noted))).then(() => {
    if (failed) throw failure;
  });
}
