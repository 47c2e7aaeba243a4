import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { membershipLoss } from '../src/service.js';

/** A heartbeat failure as the consumer loop hands it over: kafkajs' error as the cause. */
const failure = (type?: string) =>
  new DriftlineError('SOURCE_UNAVAILABLE', 'heartbeat failed', {
    retriable: true,
    cause: Object.assign(new Error('kafkajs'), type === undefined ? {} : { type }),
  });

describe('when a failed heartbeat ends a training', () => {
  it('at once when the group says the membership is gone', () => {
    for (const type of ['REBALANCE_IN_PROGRESS', 'UNKNOWN_MEMBER_ID', 'ILLEGAL_GENERATION'])
      expect(membershipLoss().failed(failure(type)), type).toBe(true);
  });

  it('after three failures in a row otherwise (a coordinator moving); a good beat starts the count again', () => {
    const lost = membershipLoss();
    expect(lost.failed(failure('COORDINATOR_NOT_AVAILABLE'))).toBe(false);
    expect(lost.failed(failure())).toBe(false);
    lost.beat();
    expect(lost.failed(failure())).toBe(false);
    expect(lost.failed(failure())).toBe(false);
    expect(lost.failed(failure())).toBe(true);
  });
});
