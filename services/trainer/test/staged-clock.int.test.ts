import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createProducer } from '@driftline/kafka';
import { contracts, type RetrainRequest } from '@driftline/schemas';
import type { Runner } from '@driftline/service';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { type ClickHouse, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { insertLabeledRows, retrainRequestOf, startTrainerOnStack } from './on-stack.js';

const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'trainer-clock-ch-'));
const prefix = `${uniqueName('staged-clock')}.`;
const database = uniqueName('staged_clock').replace('-', '_');
const DAY = 24 * 60 * 60_000;

describe("staged rollout: the gate records are dated on the model event clock (the real labelClock read), never before the request's data_to", () => {
  let ch: ClickHouse;
  let runner: Runner;
  const kafka = kafkaFor(stack.kafkaBrokers);

  beforeAll(async () => {
    ch = await createClickHouse({ mode: 'embedded', path: chPath, database });
    await migrate(ch, migrations);
    runner = await startTrainerOnStack(
      stack,
      { prefix, database, partitions: 1, chPath, artifactDir: mkdtempSync(join(tmpdir(), 'trainer-clock-art-')) },
      {
        DRIFTLINE_TRAINER_ROLLOUT: 'staged',
        DRIFTLINE_TRAINER_ROUNDS: '10',
        DRIFTLINE_TRAINER_MIN_ROWS: '100',
        DRIFTLINE_TRAINER_PROMOTION_MARGIN: '0',
      },
    );
  });

  afterAll(async () => {
    await runner?.stop();
  });

  /** Sends `request`, waits for its version, and answers the stage rows and the model events of `model`. */
  async function handled(model: string, request: RetrainRequest, events: number) {
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const retrainTopic = `${prefix}retrain.v1`;
    const producer = await createProducer(kafka);
    const sentAt = Date.now();
    await producer.send(retrainTopic, [
      { key: model, value: await codec.forTopic(contracts.retrain, retrainTopic).encode(request) },
    ]);
    await producer.disconnect();

    const [registered] = await eventually(async () => {
      const rows = await ch.select<{ version: string; status: string; registered: number | string }>(
        `SELECT version, status, toUnixTimestamp64Milli(registered_at) AS registered
         FROM ${ch.table('model_versions')} FINAL WHERE model = {model:String} AND published = 1`,
        { model },
      );
      return rows.length > 0 ? rows : undefined;
    }, 90_000);
    expect(registered!.status).toBe('PROMOTED');
    // registered_at keeps its meaning: when the trainer wrote the version (wall clock).
    expect(Number(registered!.registered)).toBeGreaterThanOrEqual(sentAt);
    expect(Number(registered!.registered)).toBeLessThanOrEqual(Date.now());

    const stages = await ch.select<{ to_stage: string; at: number | string; recorded_at: number | string }>(
      `SELECT to_stage, toUnixTimestamp64Milli(at) AS at, toUnixTimestamp64Milli(recorded_at) AS recorded_at
       FROM ${ch.table('model_transitions')} FINAL WHERE model = {model:String} ORDER BY at, to_stage`,
      { model },
    );
    expect(stages.every((s) => Number(s.recorded_at) >= sentAt)).toBe(true);

    const modelsTopic = `${prefix}models.v1`;
    const modelCodec = codec.forTopic(contracts.model, modelsTopic);
    const all = await Promise.all((await readTopic(kafka, modelsTopic, events)).map((m) => modelCodec.decode(m.value)));
    return {
      stages: stages.map((s) => [s.to_stage, Number(s.at)]),
      events: all.filter((e) => e.model === model).map((e) => `${e.kind}@${e.event_time}`),
    };
  }

  const logistic = (seed: number) => {
    const r = seededUniform(seed);
    return () => {
      const x = r() * 4 - 2;
      return { features: { x, noise: r() }, label: r() < 1 / (1 + Math.exp(-2 * x)) ? 1 : 0 };
    };
  };

  it('event time a month behind the wall clock (a replay): candidate and shadow at the newest label time, registered_at the wall clock', async () => {
    const model = 'replayed';
    const dataTo = Date.now() - 30 * DAY;
    // Labelled predictions on both sides of the window's end: the newest label lies past data_to.
    const from = dataTo - 10 * 60_000;
    const to = dataTo + 10 * 60_000;
    const n = 600;
    await insertLabeledRows(ch, model, from, to, n, logistic(5));
    // insertLabeledRows: the i-th row predicted at from + ⌊(to − from)·i/n⌋, labelled 1 ms later.
    const newestLabel = from + Math.floor(((to - from) * (n - 1)) / n) + 1;
    const { stages, events } = await handled(model, retrainRequestOf(model, dataTo), 2);
    // Before: both at registered_at, a month ahead of every prediction the shadow would be scored on.
    expect(stages).toEqual([
      ['candidate', newestLabel],
      ['shadow', newestLabel],
    ]);
    expect(events).toEqual([`TRAINED@${newestLabel}`, `SHADOW@${newestLabel}`]);
  });

  it("labels 2 days behind (a label-joiner outage): candidate and shadow at the request's data_to, not the stale label time (found by a review)", async () => {
    const model = 'lagging';
    const dataTo = Date.now() - 10 * 60_000;
    const labelledTo = dataTo - 2 * DAY;
    await insertLabeledRows(ch, model, labelledTo - 20 * 60_000, labelledTo, 300, logistic(6));
    const request = { ...retrainRequestOf(model, dataTo), data_from: labelledTo - DAY };
    const { stages, events } = await handled(model, request, 4);
    // Before: at the newest label (labelledTo), where the controller's first tick after the labels
    // caught up found the shadow's max_time over and rejected it with 0 pairs.
    expect(stages).toEqual([
      ['candidate', dataTo],
      ['shadow', dataTo],
    ]);
    expect(events).toEqual([`TRAINED@${dataTo}`, `SHADOW@${dataTo}`]);
  });
});
