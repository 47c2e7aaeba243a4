import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { committedOffsets, topicOffsets } from '@driftline/kafka';
import { createRedisOnlineStore, type RedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { contracts, type DriftAlert, type FeatureEvent, type PredictionEvent } from '@driftline/schemas';
import { type Runner, startRunner } from '@driftline/service';
import { emptyCounts, isSampled, STALENESS_BUCKETS, samplingKey } from '@driftline/skew';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { type ClickHouse, createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { skewMonitorService } from '../src/service.js';
import { producePredictions, skewEnv } from './fixtures/stack.js';

const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'skew-ch-'));
const dir = mkdtempSync(join(tmpdir(), 'skew-'));
const VIEWS_YAML = `
views:
  - name: profile
    entity: user_id
    features: { age: double, country: string }
  - name: spend
    entity: user_id
    features: { amount: double }
`;
const views = parseFeatureViewsText(VIEWS_YAML);
const WINDOW = 60_000;
// Whole minutes, well inside the accepted event-time range.
const T0 = Math.floor((Date.now() - 30 * 60_000) / WINDOW) * WINDOW;
const ENTITIES = 20;
const PER_WINDOW = 200;
const RATE = 0.5;

/** Window 0 (T0): features as stored; window 1: `amount` in cents (a unit change); a few before the rows existed. */
function stream(): PredictionEvent[] {
  const out: PredictionEvent[] = [];
  for (let w = 0; w < 2; w++) {
    for (let i = 0; i < PER_WINDOW; i++) {
      const u = i % ENTITIES;
      out.push({
        prediction_id: `w${w}-${i}`,
        model: 'fraud',
        model_version: 'v1',
        entity_id: `u${u}`,
        event_time: T0 + w * WINDOW + Math.floor((i * WINDOW) / PER_WINDOW),
        features: { age: 30 + u, country: u % 2 === 0 ? 'fr' : 'de', amount: (12.5 + u) * (w === 1 ? 100 : 1) },
        prediction: 0.5,
        predicted_class: null,
        role: 'production',
        scores: null,
      });
    }
  }
  for (let i = 0; i < 20; i++) {
    out.push({ ...out[i]!, prediction_id: `early-${i}`, event_time: T0 - 30_000 }); // rows are written at T0 − 10 s
  }
  return out;
}

const env = (prefix: string, database: string, keyPrefix: string, group: string) =>
  skewEnv(
    stack,
    { dir, viewsYaml: VIEWS_YAML, prefix, database, chPath, keyPrefix, group, sampleRate: RATE },
    { DRIFTLINE_SKEW_MIN_COMPARED: '20', DRIFTLINE_SKEW_MAX_SHARE_MISMATCHED: '0.05' },
  );
const produce = (topic: string, events: readonly PredictionEvent[], partitionOf?: (index: number) => number) =>
  producePredictions(stack, topic, events, partitionOf);

interface Totals {
  ws: number;
  feature: string;
  sampled: number;
  compared: number;
  mismatched: number;
  newer_row: number;
  missing_in_store: number;
  mean_abs_diff: number | null;
}

async function totals(ch: ClickHouse): Promise<Totals[]> {
  const rows = await ch.select<Totals>(
    `SELECT toUnixTimestamp64Milli(window_start) AS ws, feature, sum(sampled) AS sampled, sum(compared) AS compared,
       sum(mismatched) AS mismatched, sum(newer_row) AS newer_row, sum(missing_in_store) AS missing_in_store,
       if(sum(numeric_compared) = 0, NULL, sum(abs_diff_sum) / sum(numeric_compared)) AS mean_abs_diff
     FROM ${ch.table('skew_windows')} FINAL GROUP BY window_start, feature ORDER BY ws, feature`,
  );
  return rows.map((r) => ({ ...r, ws: Number(r.ws) }));
}

describe('skew-monitor on real Kafka, the registry, Redis and embedded ClickHouse', () => {
  const runners: Runner[] = [];
  let writer: RedisOnlineStore;
  const keyPrefix = uniqueName('skew').replaceAll('-', '_');

  beforeAll(async () => {
    writer = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-write', keyPrefix });
    await waitReady(writer.client);
    const events: FeatureEvent[] = [];
    for (let u = 0; u < ENTITIES; u++) {
      const t = T0 - 10_000;
      events.push({
        event_id: `p${u}`,
        view: 'profile',
        entity_id: `u${u}`,
        event_time: t,
        features: { age: 30 + u, country: u % 2 === 0 ? 'fr' : 'de' },
      });
      events.push({
        event_id: `s${u}`,
        view: 'spend',
        entity_id: `u${u}`,
        event_time: t,
        features: { amount: 12.5 + u },
      });
    }
    await writer.write(planWrites(events.map((e) => validateFeatureEvent(views, e))));
  });
  afterEach(async () => {
    for (const runner of runners.splice(0).reverse()) await runner.stop().catch(() => {});
  });
  afterAll(async () => {
    await writer.close();
  });

  it('finds the unit-changed feature, alerts on it once, counts a re-sent prediction once, and a replay changes nothing', async () => {
    const prefix = `${uniqueName('skew')}.`;
    const database = uniqueName('skew').replaceAll('-', '_');
    const ch = await createClickHouse({ mode: 'embedded', path: chPath, database });
    await migrate(ch, migrations);
    const topic = `${prefix}predictions.v1`;
    const events = stream();
    // Sampled as the monitor samples (samplingKey: id, model, entity, event time).
    const sampled = (e: PredictionEvent) =>
      isSampled(samplingKey(e.prediction_id, e.model, e.entity_id, e.event_time), RATE);
    const poison = Array.from({ length: 100 }, (_, i) => ({
      ...events[0]!,
      prediction_id: `poison-${i}`,
      entity_id: 'x'.repeat(2_000),
    })).find(sampled)!;
    // Sampled predictions of window 1 sent again by their producer (an SDK call retried whole):
    // the same records, later in their partitions (i % 2, as sent first).
    const resentAt = events.flatMap((e, i) => (i >= PER_WINDOW && sampled(e) ? [i] : []));
    const resent = resentAt.slice(0, 12);
    runners.push(
      await startRunner({ services: [skewMonitorService as never], env: env(prefix, database, keyPrefix, 'g1') }),
    );
    const sent = [...events, poison, ...resent.map((i) => events[i]!)];
    await produce(topic, sent, (i) => (i > events.length ? resent[i - events.length - 1]! % 2 : i % 2));

    const sampledIn = (pred: (e: PredictionEvent) => boolean) => events.filter((e) => pred(e) && sampled(e)).length;
    const expectedAll = sampledIn(() => true);
    const got = await eventually(
      async () => {
        const rows = await totals(ch);
        const age = rows.filter((r) => r.feature === 'age').reduce((s, r) => s + Number(r.sampled), 0);
        return age === expectedAll ? rows : undefined;
      },
      60_000,
      250,
    );
    const at = (ws: number, feature: string) => got.find((r) => r.ws === ws && r.feature === feature)!;
    const w0 = sampledIn((e) => e.event_time >= T0 && e.event_time < T0 + WINDOW);
    const w1 = sampledIn((e) => e.event_time >= T0 + WINDOW);
    const early = sampledIn((e) => e.event_time < T0);
    for (const feature of ['age', 'country', 'amount']) {
      expect(at(T0, feature)).toMatchObject({ sampled: w0, compared: w0 });
      expect(at(T0 + WINDOW, feature)).toMatchObject({ sampled: w1, compared: w1 });
      // Predictions made before the rows were written: not comparable as of their time.
      expect(at(T0 - WINDOW, feature)).toMatchObject({ sampled: early, newer_row: early, compared: 0 });
    }
    expect(at(T0, 'amount').mismatched).toBe(0);
    expect(at(T0 + WINDOW, 'amount').mismatched).toBe(w1);
    expect(at(T0 + WINDOW, 'amount').mean_abs_diff).toBeGreaterThan(1000);
    expect(at(T0 + WINDOW, 'age').mismatched).toBe(0);
    expect(at(T0 + WINDOW, 'country').mismatched).toBe(0);
    // Every record processed and committed (the re-sends are last): the totals have not moved, and
    // the re-sends are counted as duplicates. Before: window 1 held them twice.
    const kafka = kafkaFor(stack.kafkaBrokers);
    await eventually(async () => {
      const commits = await committedOffsets(kafka, `${prefix}g1`, topic);
      const offsets = await topicOffsets(kafka, topic);
      return offsets.every((o) => commits.get(o.partition) === o.high && o.high > 0n) ? true : undefined;
    }, 60_000);
    expect(await totals(ch)).toEqual(got);
    const duplicates = await runners[0]!.context.registry.getSingleMetricAsString('driftline_skew_predictions_total');
    expect(duplicates).toMatch(new RegExp(`outcome="duplicate"[^}]*\\} ${resent.length}$`, 'm'));

    // One TRAINING_SERVING_SKEW alert id: amount, window 1.
    const alertCodec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.alert,
      `${prefix}alerts.v1`,
    );
    await readTopic(kafka, `${prefix}alerts.v1`, 1, 30_000);
    const alertCount = (await topicOffsets(kafka, `${prefix}alerts.v1`)).reduce((a, o) => a + Number(o.high), 0);
    const alerts: DriftAlert[] = [];
    for (const r of await readTopic(kafka, `${prefix}alerts.v1`, alertCount, 30_000))
      alerts.push(await alertCodec.decode(r.value!));
    expect(new Set(alerts.map((a) => a.alert_id)).size).toBe(1);
    expect(alerts[0]).toMatchObject({
      kind: 'TRAINING_SERVING_SKEW',
      model: 'fraud',
      model_version: 'v1',
      feature: 'amount',
      window_start: T0 + WINDOW,
      statistic: 1,
      threshold: 0.05,
    });

    // The sampled record the store would refuse went to the DLQ with its reason, alone.
    const [dead] = await readTopic(kafka, `${topic}.dlq`, 1, 30_000);
    expect(dead!.headers['driftline.dlq.reason']?.toString()).toMatch(/entity_id/);

    // The HTML report's data reads the same rows, partitions summed.
    const report = await warehouseOn(ch).report({ model: 'fraud', from: T0 - WINDOW, to: T0 + 2 * WINDOW });
    const skewAt = (ws: number, feature: string) =>
      report.skew?.find((p) => p.windowStart === ws && p.feature === feature);
    expect(skewAt(T0 + WINDOW, 'amount')).toMatchObject({ compared: w1, mismatched: w1, version: 'v1' });
    // A window where nothing was compared has no share to chart (d4a08d8 charts per bucket in SQL):
    // the feature's totals count its rows.
    expect(skewAt(T0 - WINDOW, 'age')).toBeUndefined();
    const ages = [T0 - WINDOW, T0, T0 + WINDOW].map((ws) => at(ws, 'age'));
    expect(report.skewTotals?.features.find((f) => f.feature === 'age')).toMatchObject({
      sampled: ages.reduce((n, r) => n + r.sampled, 0),
      newerRow: ages.reduce((n, r) => n + r.newer_row, 0),
    });
    expect(ages[0]!.newer_row).toBe(early);

    // A second deployment (another group) reads everything again from the beginning: the rows
    // carry the offsets they count, so it skips them all and the totals do not move.
    await runners.splice(0)[0]!.stop();
    const replay = await startRunner({
      services: [skewMonitorService as never],
      env: env(prefix, database, keyPrefix, 'g2'),
    });
    runners.push(replay);
    await eventually(async () => {
      const offsets = await topicOffsets(kafka, topic);
      const high = offsets.reduce((a, o) => a + Number(o.high), 0);
      const text = await (await fetch(`http://127.0.0.1:${replay.httpPort}/metrics`)).text();
      const seen = [...text.matchAll(/^driftline_skew_predictions_total\{[^}]*\} (\d+)/gm)].reduce(
        (a, m) => a + Number(m[1]),
        0,
      );
      return seen >= high - 1 ? true : undefined; // every record but the poison one
    }, 60_000);
    // Compared once the replay has committed everything (its sink writes are acknowledged by then):
    // right after the counter, a write still in flight could have doubled a total unseen.
    await eventually(async () => {
      const commits = await committedOffsets(kafka, `${prefix}g2`, topic);
      const offsets = await topicOffsets(kafka, topic);
      return offsets.every((o) => commits.get(o.partition) === o.high) ? true : undefined;
    }, 60_000);
    expect(await totals(ch)).toEqual(got);
    // The replay raised no other alert: the same single id, however often it was re-sent.
    const after = (await topicOffsets(kafka, `${prefix}alerts.v1`)).reduce((a, o) => a + Number(o.high), 0);
    const ids = new Set<string>();
    for (const r of await readTopic(kafka, `${prefix}alerts.v1`, after, 30_000))
      ids.add((await alertCodec.decode(r.value!)).alert_id);
    expect(ids).toEqual(new Set([alerts[0]!.alert_id]));
    await ch.close();
  });

  it('skew_windows: a partition row replaces its older self, partitions and log epochs add up', async () => {
    const database = uniqueName('skew').replaceAll('-', '_');
    const ch = await createClickHouse({ mode: 'embedded', path: chPath, database });
    await migrate(ch, migrations);
    const store = warehouseOn(ch).skewWindows;
    const counts = (compared: number, mismatched: number) => {
      const hist = new Array<number>(STALENESS_BUCKETS).fill(0);
      hist[3] = compared;
      // One expired a row (0690): read back and summed like every count.
      return { ...emptyCounts(), sampled: compared + 1, compared, mismatched, expired: 1, stalenessHist: hist };
    };
    const row = (partition: number, throughOffset: number, compared: number, mismatched: number, logEpoch = 0) => ({
      model: 'm',
      version: 'v',
      windowStart: T0,
      windowEnd: T0 + WINDOW,
      feature: 'f',
      topic: 't',
      partition,
      logEpoch,
      throughOffset,
      counts: counts(compared, mismatched),
      updatedAt: T0,
    });
    await store.write([row(0, 10, 5, 1), row(1, 7, 4, 4)]);
    await store.write([row(0, 25, 9, 2)]);
    await store.write([row(0, 10, 5, 1)]); // a late replay of an older state loses
    const key = { model: 'm', version: 'v', windowStart: T0 };
    const p0 = await store.partials('t', 0, 0, [key], WINDOW);
    expect(p0.map((r) => [r.throughOffset, r.counts.compared, r.counts.expired])).toEqual([[25, 9, 1]]);
    const [total] = await store.totals('t', [key], WINDOW);
    expect(total!.counts).toMatchObject({ compared: 13, mismatched: 6, sampled: 15, expired: 2 });
    expect(total!.counts.stalenessHist[3]).toBe(13);

    // Partition 0's topic recreated: its new log (epoch 1) from offset 0 again has rows of its own
    // (skew_windows_v2), which neither replace the first log's nor lose to them; totals add them.
    // Each row of a later epoch names the record it began with (its log).
    expect(await store.latestLog('t', 0)).toEqual({ epoch: 0 });
    const logStart = { offset: 0, fingerprint: 'fp-of-offset-0' };
    await store.write([{ ...row(0, 3, 2, 2, 1), logStart }]);
    await store.write([{ ...row(0, 6, 4, 3, 1), logStart }]);
    await store.write([{ ...row(0, 3, 2, 2, 1), logStart }]); // a replay of the new log's older state loses
    expect([await store.latestLog('t', 0), await store.latestLog('t', 1)]).toEqual([
      { epoch: 1, start: logStart },
      { epoch: 0 },
    ]);
    expect(
      (await store.partials('t', 0, 1, [key], WINDOW)).map((r) => [r.logEpoch, r.throughOffset, r.counts.compared]),
    ).toEqual([[1, 6, 4]]);
    expect((await store.partials('t', 0, 0, [key], WINDOW)).map((r) => [r.throughOffset, r.counts.compared])).toEqual([
      [25, 9],
    ]);
    const [both] = await store.totals('t', [key], WINDOW);
    expect(both!.counts).toMatchObject({ compared: 17, mismatched: 9, sampled: 20, expired: 3 });
    expect(both!.counts.stalenessHist[3]).toBe(17);
    // The report reads both tables too.
    const [point] = (await warehouseOn(ch).report({ model: 'm', from: T0, to: T0 + WINDOW })).skew ?? [];
    expect(point).toMatchObject({ compared: 17, mismatched: 9 });
    expect(await store.totals('t', [{ ...key, windowStart: T0 + WINDOW }], WINDOW)).toEqual([]);
    // DRIFTLINE_SKEW_WINDOW doubled (topic t2): a window of the new length starting at T0 is
    // another window; neither length's partials nor totals take up the other's rows (window_end is
    // not in the table's key: before, the new length's state and totals were the old window's).
    await store.write([
      { ...row(0, 10, 5, 1), topic: 't2' },
      { ...row(1, 40, 30, 30), topic: 't2', windowEnd: T0 + 2 * WINDOW },
    ]);
    expect((await store.partials('t2', 1, 0, [key], WINDOW)).map((r) => r.throughOffset)).toEqual([]);
    expect((await store.partials('t2', 1, 0, [key], 2 * WINDOW)).map((r) => r.throughOffset)).toEqual([40]);
    expect((await store.totals('t2', [key], WINDOW)).map((t) => [t.counts.compared, t.counts.mismatched])).toEqual([
      [5, 1],
    ]);
    expect((await store.totals('t2', [key], 2 * WINDOW)).map((t) => [t.counts.compared, t.counts.mismatched])).toEqual([
      [30, 30],
    ]);

    // The release sweep's read: windows by end, their latest write over partitions and features,
    // paged in (window_end, model, version, window_start) order, bounded by the end given.
    const at = (windowStart: number, model: string, feature: string, updatedAt: number, partition = 0) => ({
      ...row(partition, 1, 1, 0),
      model,
      windowStart,
      windowEnd: windowStart + WINDOW,
      feature,
      updatedAt,
    });
    await store.write([
      at(T0 + WINDOW, 'b', 'f', T0 + 5),
      at(T0 + WINDOW, 'a', 'f', T0 + 1),
      at(T0 + WINDOW, 'a', 'g', T0 + 9, 1),
      at(T0 + 2 * WINDOW, 'a', 'f', T0 + 2),
      at(T0 + 9 * WINDOW, 'a', 'f', T0 + 3), // ends after the bound below
    ]);
    // A window only a later log wrote, and a later log's newer write of another (both found).
    await store.write([
      { ...at(T0 + WINDOW, 'c', 'f', T0 + 4), logEpoch: 1 },
      { ...at(T0 + WINDOW, 'a', 'g', T0 + 11), logEpoch: 2 },
    ]);
    const from = { model: '', version: '', windowStart: 0, windowEnd: T0 + WINDOW };
    const upTo = T0 + 3 * WINDOW;
    const all = await store.windowsEnding('t', from, upTo, WINDOW, 500);
    expect(all.map((w) => [w.windowEnd, w.model, w.lastWrittenAt])).toEqual([
      [T0 + WINDOW, 'm', T0], // ends at the cursor's end: after ('', '', 0) in the order
      [T0 + 2 * WINDOW, 'a', T0 + 11],
      [T0 + 2 * WINDOW, 'b', T0 + 5],
      [T0 + 2 * WINDOW, 'c', T0 + 4],
      [T0 + 3 * WINDOW, 'a', T0 + 2],
    ]);
    // Pages of one: a page may end between two windows of the same end.
    const paged = [];
    for (let page = await store.windowsEnding('t', from, upTo, WINDOW, 1); page.length > 0; ) {
      paged.push(...page);
      page = await store.windowsEnding('t', page[0]!, upTo, WINDOW, 1);
    }
    expect(paged).toEqual(all);
    expect(await store.windowsEnding('other', from, upTo, WINDOW, 500)).toEqual([]);
    await ch.close();
  });
});
