import { DEFAULT_EVENT_TIME_BOUNDS } from '@driftline/core';
import { referenceSet } from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import {
  stageOneProcessor,
  UNREFERENCED_WARNING_INTERVAL_MS,
  UNREFERENCED_WARNING_MAX_KEYS,
} from '../src/stage-one.js';
import { memoryProgress, memoryReferenceStore, warnings } from './support.js';

const T0 = Date.UTC(2026, 0, 1);

describe('stage one: predictions no reference measures are warned of per (model, version), rate-limited', () => {
  it('one line per (model, version) per interval, naming what is unmonitored and how many events; measured ones are not', async () => {
    const ref = referenceSet('fraud', 'v1', new Map([['x', buildNumericProfile([1, 2, 3, 4, 5])]]));
    let clock = T0;
    const references = new ReferenceCache(memoryReferenceStore([ref]).store, () => clock);
    // v1 serves, then v3 is promoted without a reference: it never borrows v1's.
    await references.promoted('fraud', 'v1', T0 - 60_000);
    await references.promoted('fraud', 'v3', T0 - 30_000);
    const { logger, lines } = warnings();
    const stageOne = stageOneProcessor({
      spec: { sizeMs: 1000, latenessMs: 0 },
      references,
      progress: memoryProgress(),
      group: 'g',
      sourceTopic: 'p',
      sourcePartitions: 1,
      mergePartitions: 1,
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      now: () => clock,
      logger,
      decode: async () => {
        throw new Error('not used');
      },
      emit: async () => {},
    });
    let offset = 0;
    const batch = (events: ReadonlyArray<readonly [string, string]>): DecodedRecord<PredictionEvent>[] =>
      events.map(([model, version]) => {
        const o = offset++;
        return {
          record: { topic: 'p', partition: 0, offset: String(o), key: null, value: null, headers: {}, timestamp: 0 },
          value: {
            prediction_id: `p${o}`,
            model,
            model_version: version,
            entity_id: 'e',
            event_time: T0 + o,
            features: { x: 1 },
            prediction: 0,
            predicted_class: null,
          },
        };
      });
    const run = (events: ReadonlyArray<readonly [string, string]>) =>
      stageOne.process(batch(events), { topic: 'p', partition: 0, highWatermark: '0' });
    const v3 = ['fraud', 'v3'] as const;
    const never = ['other', 'v9'] as const; // a model that never had a reference
    const v1 = ['fraud', 'v1'] as const;

    await run([v3, v3, v3, never, v1, v1]);
    const summary = () => lines.map((l) => [l.obj.model, l.obj.version, l.obj.unmonitoredEvents]);
    expect(summary()).toEqual([
      ['fraud', 'v3', 3],
      ['other', 'v9', 1],
    ]);
    expect(lines[0]!.msg).toContain('not monitored for drift');
    expect(String(lines[0]!.obj.fix)).toContain('driftline reference --model fraud --version v3');

    // Within the interval: nothing more written, the events counted for the next line.
    clock += UNREFERENCED_WARNING_INTERVAL_MS - 1;
    await run([v3, v3, never, v1]);
    expect(lines).toHaveLength(2);
    clock += 1;
    await run([v3]);
    expect(summary().slice(2)).toEqual([['fraud', 'v3', 3]]);
    // `other` had no event since: its count waits for its next line.
    clock += UNREFERENCED_WARNING_INTERVAL_MS;
    await run([never]);
    expect(summary().slice(3)).toEqual([['other', 'v9', 2]]);
  });

  it('more (model, version) pairs than it remembers: one overflow line per interval counts the rest (evicting wrote a line per event)', async () => {
    let clock = T0;
    const references = new ReferenceCache(memoryReferenceStore([]).store, () => clock);
    const { logger, lines } = warnings();
    const stageOne = stageOneProcessor({
      spec: { sizeMs: 60_000, latenessMs: 0 },
      references,
      progress: memoryProgress(),
      group: 'g',
      sourceTopic: 'p',
      sourcePartitions: 1,
      mergePartitions: 1,
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      now: () => clock,
      logger,
      decode: async () => {
        throw new Error('not used');
      },
      emit: async () => {},
    });
    let offset = 0;
    const run = (pairs: ReadonlyArray<readonly [string, string]>) =>
      stageOne.process(
        pairs.map(([model, version]) => {
          const o = offset++;
          return {
            record: {
              topic: 'p',
              partition: 0,
              offset: String(o),
              key: null,
              value: null,
              headers: {},
              timestamp: clock,
            },
            value: {
              prediction_id: `p${o}`,
              model,
              model_version: version,
              entity_id: 'e',
              event_time: clock,
              features: { x: 1 },
              prediction: 0,
              predicted_class: null,
            },
          };
        }),
        { topic: 'p', partition: 0, highWatermark: '0' },
      );
    // 1,500 tenants without a reference, about 10 events a minute each: 15,000 events in 60 s.
    const K = 1_500;
    for (let b = 0; b < 30; b++) {
      await run(Array.from({ length: 500 }, (_, j) => [`tenant-${(b * 500 + j) % K}`, 'v1'] as const));
      clock += 2_000;
    }
    const overflow = lines.filter((l) => l.obj.pairs !== undefined);
    expect(lines).toHaveLength(UNREFERENCED_WARNING_MAX_KEYS + 1); // 15,000 before
    expect(overflow).toHaveLength(1);
    expect(overflow[0]!.msg).toContain('500 more (model, version) pairs without a reference profile');
    expect(overflow[0]!.obj).toMatchObject({ pairs: 500, pairsAtLeast: false, unmonitoredEvents: 500 });
    // A model with a random version per event: nothing more within the interval, counted for the next.
    for (let b = 0; b < 10; b++) {
      await run(Array.from({ length: 500 }, (_, j) => ['ext', `v-${b}-${j}`] as const));
      clock += 1_000;
    }
    expect(lines).toHaveLength(UNREFERENCED_WARNING_MAX_KEYS + 1); // 5,000 before
    clock += UNREFERENCED_WARNING_INTERVAL_MS;
    await run([['ext', 'v-next']]);
    const next = lines.slice(UNREFERENCED_WARNING_MAX_KEYS + 1);
    // The remembered pairs' interval is over: v-next takes the room of the oldest, tenant-0 (one
    // line), and the overflow line counts what was left out meanwhile: the 4,500 events of tenants
    // 1,000..1,499 after its first line, ext's 5,000, and the 9 tenant-0 left out after its line.
    expect(next.map((l) => (l.obj.pairs === undefined ? 'pair' : 'overflow'))).toEqual(['pair', 'overflow']);
    expect(Number(next[1]!.obj.unmonitoredEvents)).toBe(4_500 + 5_000 + 9);
  });
});
