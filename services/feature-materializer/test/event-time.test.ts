import { DEFAULT_EVENT_TIME_BOUNDS, PoisonRecordError } from '@driftline/core';
import { planWrites, type ValidatedEvent } from '@driftline/features';
import { InMemoryOnlineStore } from '@driftline/online-store';
import type { FeatureEvent } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import { featureRecordValidator } from '../src/materializer.js';
import { views } from './helpers.js';

const NOW = Date.UTC(2024, 11, 2, 12, 0, 0);

const event = (id: string, t: number, age: number): FeatureEvent => ({
  event_id: id,
  view: 'profile',
  entity_id: 'u1',
  event_time: t,
  features: { age },
});

describe('feature-materializer: event-time bounds', () => {
  it('a µs event goes to the DLQ and does not freeze the row: later events still win', async () => {
    const validate = featureRecordValidator(views, '', DEFAULT_EVENT_TIME_BOUNDS, () => NOW);
    const store = new InMemoryOnlineStore({ now: () => NOW });
    const dlq: string[] = [];
    // What the consumer loop does: decode + validate each record (poison → DLQ), then write the batch.
    const batch = async (events: FeatureEvent[]) => {
      const ok: ValidatedEvent[] = [];
      for (const e of events) {
        try {
          ok.push(validate(e, 'features.v1'));
        } catch (error) {
          if (!(error instanceof PoisonRecordError)) throw error;
          dlq.push(error.message);
        }
      }
      if (ok.length > 0) await store.write(planWrites(ok));
    };
    await batch([event('a', NOW - 60_000, 1), event('µs', NOW * 1000, 2)]);
    await batch([event('b', NOW - 1000, 3)]);
    expect(dlq).toEqual([expect.stringMatching(/^event_time \d+ is [\d,]+ years in the future.*microseconds\?$/)]);
    const row = await store.read(views.get('profile')!, 'u1');
    expect(row?.eventTime).toBe(NOW - 1000);
    expect(row?.features.age).toBe(3);
  });

  it('refuses pre-minimum and too-far-future times with the reason, on the topic the view reads', () => {
    const validate = featureRecordValidator(views, 'pre.', DEFAULT_EVENT_TIME_BOUNDS, () => NOW);
    expect(() => validate(event('x', Date.UTC(1899, 0, 1), 1), 'pre.features.v1')).toThrow(/before the minimum/);
    expect(() => validate(event('x', NOW + 86_400_000, 1), 'pre.features.v1')).toThrow(/1 day in the future/);
    expect(validate(event('x', NOW, 1), 'pre.features.v1').eventTime).toBe(NOW);
  });
});
