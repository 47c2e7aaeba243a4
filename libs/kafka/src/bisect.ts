import { toDriftlineError } from '@driftline/core';
import type { DeadLetter, DecodedRecord } from './records.js';

/**
 * Delivers items to a sink. A retriable failure is rethrown (the caller backs off and retries the
 * whole batch; sinks are idempotent). A non-retriable failure means some record is unacceptable:
 * the batch is split in halves until the offending records are isolated, and those are returned
 * as dead letters, so one bad record never blocks a partition nor takes good records with it.
 */
export async function deliverWithBisect<T>(
  items: ReadonlyArray<DecodedRecord<T>>,
  deliver: (items: ReadonlyArray<DecodedRecord<T>>) => Promise<void>,
): Promise<DeadLetter[]> {
  if (items.length === 0) return [];
  try {
    await deliver(items);
    return [];
  } catch (thrown) {
    const error = toDriftlineError(thrown);
    if (error.retriable) throw error;
    if (items.length === 1) {
      const only = items[0]!;
      return [{ record: only.record, code: error.code, reason: error.message }];
    }
    const middle = Math.ceil(items.length / 2);
    const left = await deliverWithBisect(items.slice(0, middle), deliver);
    const right = await deliverWithBisect(items.slice(middle), deliver);
    return [...left, ...right];
  }
}
