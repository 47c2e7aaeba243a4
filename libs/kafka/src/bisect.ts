import { type DriftlineError, type ErrorCode, toDriftlineError } from '@driftline/core';
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

/**
 * Codes a processor's failure carries when it is no fault of the record: an error nobody classified
 * (`INTERNAL`: a TypeError from a bug, a broken invariant), or the deployment's own contract or
 * configuration refused (a publisher whose schema the registry will not take).
 */
const PROCESSOR_FAULT_CODES: ReadonlySet<ErrorCode> = new Set(['INTERNAL', 'SCHEMA_INCOMPATIBLE', 'CONFIG_INVALID']);

/** Whether a rejection's code points at the processor rather than at the record. */
export function isProcessorFaultCode(code: ErrorCode): boolean {
  return PROCESSOR_FAULT_CODES.has(code);
}

/**
 * Whether one attempt's rejections point at the processor rather than at the records: nothing it
 * was offered got through, and at least one record failed with a processor-fault code. Dead-lettered
 * at once, a bad deploy drained a topic into its DLQ; the loop holds such a batch instead
 * (`ConsumerOptions.faultHoldMs`).
 */
export function suspectsProcessor(offered: number, rejected: ReadonlyArray<Pick<DeadLetter, 'code'>>): boolean {
  return offered > 0 && rejected.length === offered && rejected.some((r) => isProcessorFaultCode(r.code));
}
