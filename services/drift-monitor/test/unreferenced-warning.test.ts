import { DEFAULT_EVENT_TIME_BOUNDS, type Logger } from '@driftline/core';
import { referenceSet } from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { stageOneProcessor, UNREFERENCED_WARNING_INTERVAL_MS } from '../src/stage-one.js';
import { memoryProgress, memoryReferenceStore } from './support.js';

const T0 = Date.UTC(2026, 0, 1);

/** A logger that keeps its warnings. */
function warnings(): { logger: Logger; lines: Array<{ obj: Record<string, unknown>; msg: string | undefined }> } {
  const lines: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    error: () => {},
    warn: (obj, msg) => {
      lines.push({ obj: obj as Record<string, unknown>, msg });
    },
    child: () => logger,
  };
  return { logger, lines };
}

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
});
