import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { DEFAULT_EVENT_TIME_BOUNDS } from '@driftline/core';
import { decodePartials, type OutboundPartials, referenceSet } from '@driftline/drift';
import { committedOffsets, createProducer, type DecodedRecord, topicOffsets } from '@driftline/kafka';
import { contracts, type DriftAlert, type PredictionEvent } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { describe, expect, inject, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { PARTIALS_TOPIC } from '../src/service.js';
import { stageOneProcessor } from '../src/stage-one.js';
import { driftEnv, driftMonitors } from './runner.js';

const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'drift-q-'));
const MERGE_PARTITIONS = 2;
/** Windows of 1 s, recent enough for the event-time bounds. */
const W0 = Math.floor(Date.now() / 1000) * 1000 - 60_000;
const MODELS = ['qa', 'qb'];

describe('drift-monitor merge stage: a poison window on real Kafka and embedded ClickHouse', () => {
  const monitors = driftMonitors();

  it('quarantines the window (drift_quarantine + alert), sends nothing to the DLQ, and later windows land', async () => {
    const prefix = `${uniqueName('driftq')}.`;
    const ch = await createClickHouse({ mode: 'embedded', path: chPath, database: uniqueName('dq').replace('-', '_') });
    await migrate(ch, migrations);
    const warehouse = warehouseOn(ch);
    const profile = buildNumericProfile(Array.from({ length: 200 }, (_, i) => i % 100));
    for (const model of MODELS) await warehouse.references.save(referenceSet(model, 'v1', new Map([['x', profile]])));

    await monitors.start(
      driftEnv(
        stack,
        { prefix, partitions: 1, database: ch.database, path: chPath },
        {
          DRIFTLINE_LOG_LEVEL: process.env.DRIFT_TEST_LOG_LEVEL ?? 'fatal',
          DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: String(MERGE_PARTITIONS),
        },
      ),
    );

    // What stage one emits for windows W0..W2 of both models (closed by an event in W3), built by
    // the real stage-one processor; then model qa's partial of W0+1000 is corrupted: it decodes,
    // but its summary names another profile, so its window can never be merged.
    const outbound: OutboundPartials[] = [];
    const stageOne = stageOneProcessor({
      spec: { sizeMs: 1000, latenessMs: 0 },
      references: new ReferenceCache(warehouse.references),
      progress: { load: async () => undefined, save: async () => {} },
      group: 'test',
      sourceTopic: `${prefix}predictions.v1`,
      sourcePartitions: 1,
      mergePartitions: MERGE_PARTITIONS,
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      decode: async () => {
        throw new Error('not used');
      },
      emit: async (messages) => {
        outbound.push(...messages);
      },
    });
    const times = [0, 100, 1000, 1100, 2000, 2100, 3000].map((t) => W0 + t);
    const items: DecodedRecord<PredictionEvent>[] = times.flatMap((t, i) =>
      MODELS.map((model, j) => ({
        record: {
          topic: 'p',
          partition: 0,
          offset: String(2 * i + j),
          key: null,
          value: null,
          headers: {},
          timestamp: 0,
        },
        value: {
          prediction_id: `${model}-${i}`,
          model,
          model_version: 'v1',
          entity_id: 'e',
          event_time: t,
          features: { x: (i * 13) % 100 },
          prediction: 0,
          predicted_class: null,
        },
      })),
    );
    await stageOne.process(items, { topic: `${prefix}predictions.v1`, partition: 0, highWatermark: '0' });
    const messages = outbound.map((m) => {
      const msg = decodePartials(m.value);
      if (msg.type !== 'partial' || msg.model !== 'qa' || msg.windowStart !== W0 + 1000) return m;
      const corrupt = { ...msg, summaries: { x: { ...msg.summaries.x!, profileId: 'another-profile' } } };
      return { ...m, value: Buffer.from(JSON.stringify(corrupt)) };
    });
    const partialsTopic = `${prefix}${PARTIALS_TOPIC}`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const producer = await createProducer(kafka);
    await producer.send(partialsTopic, messages);
    await producer.disconnect();

    // Every other (model, window) lands, the poison one is recorded in drift_quarantine.
    const expected = ['qa@0', 'qa@2000', 'qb@0', 'qb@1000', 'qb@2000'];
    const landed = await eventually(
      async () => {
        const rows = await ch.select<{ model: string; ws: string }>(
          `SELECT DISTINCT model, toUnixTimestamp64Milli(window_start) AS ws FROM ${ch.table('drift_windows')}`,
        );
        const got = rows.map((r) => `${r.model}@${Number(r.ws) - W0}`).sort();
        return got.length >= expected.length ? got : undefined;
      },
      30_000,
      250,
    );
    expect(landed).toEqual(expected);
    // The quarantine row is its own insert: it may land after the other windows' rows.
    const quarantined = await eventually(
      async () => {
        const rows = await ch.select<{ model: string; ws: string; code: string; reason: string }>(
          `SELECT model, toUnixTimestamp64Milli(window_start) AS ws, code, reason FROM ${ch.table('drift_quarantine')} FINAL`,
        );
        return rows.length > 0 ? rows : undefined;
      },
      30_000,
      250,
    );
    expect(quarantined.map((q) => [q.model, Number(q.ws) - W0, q.code])).toEqual([['qa', 1000, 'DECODE_FAILED']]);
    expect(quarantined[0]!.reason).toMatch(/profileId another-profile does not match/);

    // Alerted on alerts.v1.
    const alertCodec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.alert,
      `${prefix}alerts.v1`,
    );
    const alerts: DriftAlert[] = await eventually(async () => {
      const ends = await topicOffsets(kafka, `${prefix}alerts.v1`);
      const count = ends.reduce((n, p) => n + Number(p.high - p.low), 0);
      const read = await readTopic(kafka, `${prefix}alerts.v1`, count, 10_000);
      const decoded = await Promise.all(read.map((m) => alertCodec.decode(m.value)));
      return decoded.some((a) => a.kind === 'DRIFT_WINDOW_QUARANTINED') ? decoded : undefined;
    }, 30_000);
    expect(
      alerts.filter((a) => a.kind === 'DRIFT_WINDOW_QUARANTINED').map((a) => [a.model, a.window_start - W0]),
    ).toEqual([['qa', 1000]]);

    // Nothing blamed: the partials DLQ is empty, and the merge group committed every partition to its end.
    const dlq = await topicOffsets(kafka, `${partialsTopic}.dlq`);
    expect(dlq.reduce((n, p) => n + Number(p.high - p.low), 0)).toBe(0);
    const ends = await topicOffsets(kafka, partialsTopic);
    await eventually(async () => {
      const committed = await committedOffsets(kafka, `${prefix}drift-monitor-merge`, partialsTopic);
      return ends.every((p) => committed.get(p.partition) === p.high) ? true : undefined;
    }, 15_000);
  });
});
