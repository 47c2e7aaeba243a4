import { ConfigError, DriftlineError, PoisonRecordError, SinkUnavailableError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { withUnsent } from '../src/unsent.js';
import { loggedErrorLine } from './log-line.js';

describe('the error of a failed publish call carries its unsent events (found by a review)', () => {
  it('keeps the error itself: its class, fields, stack and cause; shared details untouched', () => {
    const cause = new Error('broker gone');
    const errors = [
      new ConfigError('topicPrefix', 'bad'),
      new PoisonRecordError('VALIDATION_FAILED', 'bad event'),
      new SinkUnavailableError('no room', { cause, details: { buffered: 2, events: 6 } }),
    ];
    for (const original of errors) {
      const stack = original.stack;
      const failed = withUnsent(original, [{ event_id: 'x' }]);
      // Before, a new plain DriftlineError: `instanceof ConfigError` false, the stack at the re-wrap.
      expect(failed).toBe(original);
      expect(failed.stack).toBe(stack);
      expect(failed.details.unsent).toEqual([{ event_id: 'x' }]);
    }
    expect((errors[0] as ConfigError).field).toBe('topicPrefix');
    expect(errors[2]).toBeInstanceOf(SinkUnavailableError);
    expect(errors[2]?.cause).toBe(cause);
    expect(errors[2]?.details).toMatchObject({ buffered: 2, events: 6 });
    // A details object another error shares (a validation error's, its codec cause's) stays as it is;
    // a foreign error is wrapped, with it as the cause.
    const shared = { paths: ['features.a'] };
    const inner = new DriftlineError('VALIDATION_FAILED', 'codec', { details: shared });
    withUnsent(new DriftlineError('VALIDATION_FAILED', 'event [0]', { cause: inner, details: shared }), []);
    expect(Object.getOwnPropertyNames(shared)).toEqual(['paths']);
    const foreign = new TypeError('boom');
    const wrapped = withUnsent(foreign, []);
    expect(wrapped).toBeInstanceOf(DriftlineError);
    expect(wrapped.cause).toBe(foreign);
  });

  it('keeps the events out of a log line: a 10,000-event batch logs its counts only', () => {
    const events = Array.from({ length: 10_000 }, (_, i) => ({
      view: 'profile',
      entity_id: `user-${i}`,
      event_id: `id-${i}`,
      features: { income_secret_value: i * 7 },
    }));
    const failed = withUnsent(
      new DriftlineError('SINK_UNAVAILABLE', 'no room', {
        retriable: true,
        details: { buffered: 4_000, events: 10_000 },
      }),
      events.slice(4_000),
    );
    const line = loggedErrorLine(failed);
    // Before: 2.36 MB with every feature value (personal data) in one line.
    expect(line.length).toBeLessThan(4_000);
    expect(line).not.toContain('income_secret_value');
    expect(line).not.toContain('user-9999');
    expect(JSON.parse(line).err.details).toEqual({ buffered: 4_000, events: 10_000 });
    expect(failed.details.unsent).toHaveLength(6_000);
  });
});
