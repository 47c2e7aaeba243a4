import { type DriftlineError, toDriftlineError } from '@driftline/core';
import type { DeadLetter, DecodedRecord } from './records.js';

/**
 * Delivers items to a sink. A retriable failure is rethrown (the caller backs off and retries the
 * whole batch; sinks are idempotent). A non-retriable failure means some item is unacceptable:
 * the batch is split in halves until the offending items are isolated, and those are returned
 * with their errors, so one bad item never blocks the others nor takes good ones with it.
 */
export async function isolateRejected<I>(
  items: readonly I[],
  deliver: (items: readonly I[]) => Promise<void>,
): Promise<Array<{ readonly item: I; readonly error: DriftlineError }>> {
  if (items.length === 0) return [];
  try {
    await deliver(items);
    return [];
  } catch (thrown) {
    const error = toDriftlineError(thrown);
    if (error.retriable) throw error;
    if (items.length === 1) return [{ item: items[0]!, error }];
    const middle = Math.ceil(items.length / 2);
    const left = await isolateRejected(items.slice(0, middle), deliver);
    const right = await isolateRejected(items.slice(middle), deliver);
    return [...left, ...right];
  }
}

/** {@link isolateRejected} over consumed records: the rejected ones as dead letters. */
export async function deliverWithBisect<T>(
  items: ReadonlyArray<DecodedRecord<T>>,
  deliver: (items: ReadonlyArray<DecodedRecord<T>>) => Promise<void>,
): Promise<DeadLetter[]> {
  const rejected = await isolateRejected(items, deliver);
  return rejected.map(({ item, error }) => ({ record: item.record, code: error.code, reason: error.message }));
}
