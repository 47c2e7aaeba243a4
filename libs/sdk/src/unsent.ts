import { type DriftlineError, toDriftlineError } from '@driftline/core';

/**
 * The error a publish call rejects with, carrying the events it did not buffer as a non-enumerable
 * `details.unsent`. The error itself is kept (its class for `instanceof`, its stack and cause);
 * only `details` is replaced by a copy (a details object may be shared with a cause). Not
 * enumerable: a logger's error serializer copies enumerable properties, and a 10,000-event batch
 * made a 2.36 MB log line holding the feature values.
 */
export function withUnsent(error: unknown, unsent: readonly unknown[]): DriftlineError {
  const e = toDriftlineError(error);
  const details = { ...e.details };
  Object.defineProperty(details, 'unsent', { value: unsent, enumerable: false });
  Object.defineProperty(e, 'details', { value: details, enumerable: true, configurable: true });
  return e;
}
