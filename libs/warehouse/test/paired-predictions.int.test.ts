import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import {
  chTime,
  createClickHouse,
  LABEL_CLOCK_QUORUM,
  migrate,
  migrations,
  type PairedOutcome,
  warehouseOn,
} from '../src/index.js';

// The embedded engine (chdb) is a real ClickHouse; one data directory per test process.
const path = mkdtempSync(join(tmpdir(), 'driftline-ch-pairs-'));
const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;

const prediction = (
  id: string,
  t: number,
  extra: Partial<PredictionEvent> = {},
): PredictionEvent & { scores: Record<string, number> | null } => ({
  prediction_id: id,
  model: 'fraud',
  model_version: 'v1',
  entity_id: `e-${id}`,
  event_time: t,
  features: { f0: 1 },
  prediction: 0.5,
  predicted_class: null,
  role: 'production',
  scores: null,
  ...extra,
});
const label = (id: string, t: number, value: number | null = null): LabelEvent => ({
  prediction_id: id,
  model: 'fraud',
  event_time: t,
  label: Number(id.length % 2),
  value,
});

describe('labeled_predictions: role, scores, label_value (0520) and the paired read', () => {
  it('adds the columns to existing tables: rows written before read as production with no scores', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(
      ch,
      migrations.filter((m) => m.id < '0520'),
    );
    const t = Date.now() - 60_000;
    await ch.insert('labeled_predictions', [
      {
        model: 'fraud',
        model_version: 'v1',
        prediction_id: 'old',
        entity_id: 'e',
        prediction_time: chTime(t),
        label_time: chTime(t + 1),
        features: '{}',
        prediction: 0.3,
        predicted_class: null,
        label: 1,
        joined_at: chTime(t + 2),
      },
    ]);
    expect(await migrate(ch, migrations)).toContain('0520_labeled_predictions_paired');
    expect(
      await ch.select(
        `SELECT role, scores, label_value FROM ${ch.table('labeled_predictions')} WHERE prediction_id = 'old'`,
      ),
    ).toEqual([{ role: 'production', scores: {}, label_value: null }]);
    const unlabeled = await ch.select<{ name: string; type: string }>(
      "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} AND name IN ('role', 'scores')",
      { db: ch.database, t: 'unlabeled_predictions' },
    );
    expect(unlabeled.map((c) => `${c.name} ${c.type}`).sort()).toEqual([
      'role LowCardinality(String)',
      'scores Map(String, Float64)',
    ]);
    expect(
      await warehouseOn(ch).predictions.readPairs({
        model: 'fraud',
        incumbent: 'v1',
        challenger: 'v2',
        from: 0,
        limit: 10,
      }),
    ).toEqual([]);
    await ch.close();
  });

  it('readPairs: rows scored by both versions since `from`, by arrival (joined_at, prediction_id), deduplicated, limited', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const wh = warehouseOn(ch);
    const t0 = Date.now() - 3_600_000;
    const rows = [
      // [id, prediction time offset, label time offset, version, role, scores, label value]
      ['p1', 10, 500, 'v1', 'production', { v1: 0.2, v2: 0.9 }, 10],
      ['p2', 20, 400, 'v2', 'canary', { v2: 0.7, v1: 0.1 }, null],
      ['p3', 30, 400, 'v1', 'production', { v1: 0.4, v2: 0.3, v3: 0.5 }, 3],
      ['p4', 40, 300, 'v1', 'production', { v1: 0.6 }, null], // one version only: no pair
      ['p5', 5, 100, 'v1', 'production', { v1: 0.6, v2: 0.6 }, null], // before `from`
      ['p6', 50, 600, 'v1', 'production', null, null], // an older producer: no scores
      ['p7', 60, 200, 'v1', 'production', { v1: 0.5, v2: 1.5 }, null], // a score outside [0, 1]
    ] as const;
    const joined = rows.map(([id, pt, lt, version, role, scores, value]) => ({
      prediction: prediction(id, t0 + pt, {
        model_version: version,
        role,
        scores: scores === null ? null : { ...scores },
        prediction: scores?.[version as 'v1'] ?? 0.5,
      }),
      label: label(id, t0 + lt, value),
      joinedAt: t0 + lt + 1,
    }));
    // A label the binary comparison cannot use (2), labelled first: it must not take a place under `limit`.
    joined.push({
      prediction: prediction('p8', t0 + 70, { scores: { v1: 0.3, v2: 0.4 }, prediction: 0.3 }),
      label: { ...label('p8', t0 + 150), label: 2 },
      joinedAt: t0 + 151,
    });
    // Another model with the same versions and ids: never read for `fraud`.
    const other = joined.map((j) => ({ ...j, prediction: { ...j.prediction, model: 'churn' } }));
    await wh.predictions.insertJoined([...joined, ...other]);
    await wh.predictions.insertJoined(joined.slice(0, 3)); // a replay: FINAL keeps one row each
    const from = t0 + 10;
    // The reference: the same selection done by hand on the rows written.
    const expected: PairedOutcome[] = joined
      .filter((j) => j.prediction.event_time >= from && j.prediction.scores?.v1 !== undefined)
      .filter((j) => j.prediction.scores?.v2 !== undefined)
      .filter((j) => j.label.label === 0 || j.label.label === 1)
      .filter((j) => [j.prediction.scores!.v1!, j.prediction.scores!.v2!].every((s) => s >= 0 && s <= 1))
      .sort((a, b) => a.joinedAt - b.joinedAt || a.prediction.prediction_id.localeCompare(b.prediction.prediction_id))
      .map((j) => ({
        predictionId: j.prediction.prediction_id,
        predictionTime: j.prediction.event_time,
        labelTime: j.label.event_time,
        joinedAt: j.joinedAt,
        label: j.label.label,
        incumbent: j.prediction.scores!.v1!,
        challenger: j.prediction.scores!.v2!,
        answeredVersion: j.prediction.model_version,
        role: j.prediction.role!,
      }));
    expect(expected.map((p) => p.predictionId)).toEqual(['p2', 'p3', 'p1']);
    const q = { model: 'fraud', incumbent: 'v1', challenger: 'v2', from };
    expect(await wh.predictions.readPairs({ ...q, limit: 100 })).toEqual(expected);
    expect(await wh.predictions.readPairs({ ...q, limit: 2 })).toEqual(expected.slice(0, 2));
    // The rows left out as unusable are counted in the same read, over all of them (not up to `limit`):
    // p7 (a score of 1.5) and p8 (a label of 2); p4, p5 and p6 are no pair at all.
    for (const limit of [100, 1]) {
      expect(await wh.predictions.readPairsCounted({ ...q, limit })).toEqual({
        pairs: expected.slice(0, limit),
        unusable: { labelNotBinary: 1, scoreNotProbability: 1, unscored: 0 },
        // The newest arrival of every usable pair, beyond the limit too.
        newestJoined: Math.max(...expected.map((p) => p.joinedAt)),
      });
    }
    // Swapped roles swap the columns.
    expect(
      (await wh.predictions.readPairs({ ...q, incumbent: 'v2', challenger: 'v1', limit: 1 })).map((p) => [
        p.incumbent,
        p.challenger,
      ]),
    ).toEqual([[0.7, 0.1]]);
    // The label's business value and the role are stored with the row.
    expect(
      await ch.select(
        `SELECT prediction_id, role, label_value FROM ${ch.table('labeled_predictions')} FINAL
         WHERE model = 'fraud' AND prediction_id IN ('p1', 'p2') ORDER BY prediction_id`,
      ),
    ).toEqual([
      { prediction_id: 'p1', role: 'production', label_value: 10 },
      { prediction_id: 'p2', role: 'canary', label_value: null },
    ]);
    // Unlabeled rows keep role and scores too.
    await wh.predictions.insertExpired([
      { prediction: joined[1]!.prediction, deadline: t0 + 1_000, expiredAt: t0 + 2_000 },
    ]);
    expect(await ch.select(`SELECT role, scores FROM ${ch.table('unlabeled_predictions')} FINAL`)).toEqual([
      { role: 'canary', scores: { v2: 0.7, v1: 0.1 } },
    ]);
    await expect(wh.predictions.readPairs({ ...q, limit: 0 })).rejects.toThrow(
      /readPairs limit: an integer in \[1, 1000000\]/,
    );
    await ch.close();
  });
});

describe('labeled_predictions: the paired read in arrival order', () => {
  it('a label that arrives late, dated before the others, is read last; a redelivery does not move a row; the limit keeps the first arrivals', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const wh = warehouseOn(ch);
    const t0 = Date.now() - 3_600_000;
    const scores = { v1: 0.2, v2: 0.7 };
    const row = (id: string, labelAt: number, joinedAt: number) => ({
      prediction: prediction(id, t0, { scores, prediction: 0.2 }),
      label: label(id, t0 + labelAt),
      joinedAt: t0 + joinedAt,
    });
    // Joined in the order of their labels, a second apart; then `late`, labelled before all of
    // them, arrives ten minutes on. Ordered by label time it came first, and the controller's
    // test looked at another path than the one it had tested the tick before.
    const early = ['a', 'b', 'c'].map((id, i) => row(id, 10_000 + i * 1_000, 11_000 + i * 1_000));
    await wh.predictions.insertJoined(early);
    const late = row('late', 1_000, 600_000);
    await wh.predictions.insertJoined([late]);
    // A redelivery before the joiner's ack writes the row again with the same joined_at.
    await wh.predictions.insertJoined([early[0]!]);
    const q = { model: 'fraud', incumbent: 'v1', challenger: 'v2', from: t0 };
    const read = await wh.predictions.readPairs({ ...q, limit: 100 });
    expect(read.map((p) => [p.predictionId, p.labelTime - t0, p.joinedAt - t0])).toEqual([
      ['a', 10_000, 11_000],
      ['b', 11_000, 12_000],
      ['c', 12_000, 13_000],
      ['late', 1_000, 600_000],
    ]);
    // The limit keeps the first arrivals (the next tick's read extends this one).
    expect((await wh.predictions.readPairs({ ...q, limit: 3 })).map((p) => p.predictionId)).toEqual(['a', 'b', 'c']);
    // Same joined_at: by prediction id.
    await wh.predictions.insertJoined([row('0tie', 500, 600_000)]);
    expect((await wh.predictions.readPairs({ ...q, limit: 100 })).map((p) => p.predictionId)).toEqual([
      'a',
      'b',
      'c',
      '0tie',
      'late',
    ]);
    await ch.close();
  });
});

describe('labeled_predictions: the paired read with label_maturity (matureUntil)', () => {
  it('only rows predicted at or before matureUntil, by prediction time then id, whatever their arrival; the limit keeps the earliest predicted; the count covers the same range', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const wh = warehouseOn(ch);
    const t0 = Date.now() - 3_600_000;
    const row = (
      id: string,
      predictedAt: number,
      joinedAt: number,
      scores: Record<string, number> = { v1: 0.2, v2: 0.7 },
    ) => ({
      prediction: prediction(id, t0 + predictedAt, { scores, prediction: 0.2 }),
      label: label(id, t0 + joinedAt - 1),
      joinedAt: t0 + joinedAt,
    });
    // Arrival (joined_at) order is the reverse of prediction order: positives first, as a
    // chargeback's label comes before a negative's.
    await wh.predictions.insertJoined([row('c', 3_000, 10_000), row('b', 2_000, 20_000)]);
    await wh.predictions.insertJoined([row('a', 1_000, 30_000), row('0tie', 2_000, 40_000)]);
    // Predicted after matureUntil (arrived first of all): not read yet.
    await wh.predictions.insertJoined([row('young', 5_000, 5_000)]);
    // Unusable rows: one inside the range, one after it.
    await wh.predictions.insertJoined([
      row('margin', 2_500, 50_000, { v1: 0.2, v2: 2.5 }),
      row('margin-young', 6_000, 50_000, { v1: 0.2, v2: 2.5 }),
    ]);
    // A redelivery (same joined_at): one row.
    await wh.predictions.insertJoined([row('a', 1_000, 30_000)]);
    const q = { model: 'fraud', incumbent: 'v1', challenger: 'v2', from: t0, matureUntil: t0 + 4_000 };
    const read = await wh.predictions.readPairsCounted({ ...q, limit: 100 });
    expect(read.pairs.map((p) => [p.predictionId, p.predictionTime - t0])).toEqual([
      ['a', 1_000],
      ['0tie', 2_000],
      ['b', 2_000],
      ['c', 3_000],
    ]);
    expect(read.unusable).toEqual({ labelNotBinary: 0, scoreNotProbability: 1, unscored: 0 });
    // The bound is inclusive, and the limit keeps the earliest predicted.
    expect(
      (await wh.predictions.readPairs({ ...q, matureUntil: t0 + 3_000, limit: 3 })).map((p) => p.predictionId),
    ).toEqual(['a', '0tie', 'b']);
    expect(
      (await wh.predictions.readPairs({ ...q, matureUntil: t0 + 2_999, limit: 100 })).map((p) => p.predictionId),
    ).toEqual(['a', '0tie', 'b']);
    // Without it: arrival order, every row since `from`.
    expect(
      (
        await wh.predictions.readPairs({
          model: q.model,
          incumbent: q.incumbent,
          challenger: q.challenger,
          from: q.from,
          limit: 100,
        })
      ).map((p) => p.predictionId),
    ).toEqual(['young', 'c', 'b', 'a', '0tie']);
    await expect(wh.predictions.readPairs({ ...q, matureUntil: 1.5, limit: 1 })).rejects.toThrow(
      /matureUntil: epoch ms/,
    );
    await ch.close();
  });
});

describe('labeled_predictions: the paired read by closed arrival bucket (arrival)', () => {
  it('only rows joined before `before`, by bucket of joined_at, then cityHash64(prediction_id): a file sorted by outcome is read shuffled; a later bound extends the read; the earliest waiting prediction is told', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const wh = warehouseOn(ch);
    const HOUR = 3_600_000;
    const b0 = Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR; // a bucket's start, five hours back
    const row = (id: string, predictedAt: number, joinedAt: number, value: 0 | 1, v2 = 0.7) => ({
      prediction: prediction(id, b0 + predictedAt, { scores: { v1: 0.2, v2 }, prediction: 0.2 }),
      label: { ...label(id, b0 + joinedAt - 1), label: value },
      joinedAt: b0 + joinedAt,
    });
    // A file sorted by outcome (positives first) in two batches of the first bucket, a millisecond apart.
    const first = [
      ...['f1', 'f2', 'f3', 'f4'].map((id, i) => row(id, -HOUR + i, 1_000, 1)),
      ...['f5', 'f6', 'f7', 'f8'].map((id, i) => row(id, -HOUR + 10 + i, 1_001, 0)),
    ];
    await wh.predictions.insertJoined(first);
    // The next bucket, and one after it (not closed at the first bound).
    await wh.predictions.insertJoined([row('s1', 100, HOUR + 5, 1), row('s2', 50, HOUR + 6, 0)]);
    await wh.predictions.insertJoined([row('t1', 30, 2 * HOUR + 7, 1), row('t2', 20, 2 * HOUR + 8, 0)]);
    // Unusable rows are counted whatever their bucket.
    await wh.predictions.insertJoined([row('m1', 10, 2 * HOUR + 9, 0, 2.5)]);
    const hashOrder = async (ids: readonly string[]) =>
      (
        await ch.select<{ id: string }>(
          'SELECT id FROM (SELECT arrayJoin({ids:Array(String)}) AS id) ORDER BY cityHash64(id), id',
          { ids: [...ids] },
        )
      ).map((r) => r.id);
    const q = { model: 'fraud', incumbent: 'v1', challenger: 'v2', from: b0 - 2 * HOUR, limit: 100 };
    const read = await wh.predictions.readPairsCounted({ ...q, arrival: { bucketMs: HOUR, before: b0 + 2 * HOUR } });
    const firstBucket = await hashOrder(first.map((r) => r.prediction.prediction_id));
    expect(read.pairs.map((p) => p.predictionId)).toEqual([...firstBucket, ...(await hashOrder(['s1', 's2']))]);
    // Not the order they were joined in (positives first).
    expect(firstBucket).not.toEqual(['f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7', 'f8']);
    expect(read.waitingFrom).toBe(b0 + 20);
    expect(read.unusable).toEqual({ labelNotBinary: 0, scoreNotProbability: 1, unscored: 0 });
    // The newest arrival of every usable pair, those waiting included (not the unusable m1, joined
    // later): every pair read was joined before `before`, so they alone never show a joiner's
    // clock ahead of the reader's. Beyond the limit too, and without `arrival`.
    expect(read.newestJoined).toBe(b0 + 2 * HOUR + 8);
    const cut = await wh.predictions.readPairsCounted({ ...q, limit: 1, arrival: { bucketMs: HOUR, before: b0 } });
    expect(cut.pairs).toHaveLength(0);
    expect(cut.newestJoined).toBe(b0 + 2 * HOUR + 8);
    expect((await wh.predictions.readPairsCounted({ ...q, limit: 1 })).newestJoined).toBe(b0 + 2 * HOUR + 8);
    expect((await wh.predictions.readPairsCounted({ ...q, from: b0 + 3 * HOUR })).newestJoined).toBeUndefined();
    // The next bucket closed: the read extends the last one at its end.
    const later = await wh.predictions.readPairsCounted({ ...q, arrival: { bucketMs: HOUR, before: b0 + 3 * HOUR } });
    expect(later.pairs.map((p) => p.predictionId)).toEqual([
      ...read.pairs.map((p) => p.predictionId),
      ...(await hashOrder(['t1', 't2'])),
    ]);
    expect(later.waitingFrom).toBeUndefined();
    // Without `arrival`: arrival order, every row.
    expect((await wh.predictions.readPairs(q)).map((p) => p.predictionId)).toEqual([
      'f1',
      'f2',
      'f3',
      'f4',
      'f5',
      'f6',
      'f7',
      'f8',
      's1',
      's2',
      't1',
      't2',
    ]);
    await expect(wh.predictions.readPairs({ ...q, arrival: { bucketMs: 0, before: b0 } })).rejects.toThrow(
      /readPairs arrival/,
    );
    await ch.close();
  });
});

describe('labeled_predictions: unusable pairs are counted', () => {
  it('a model scoring margins (binary:logitraw, ±2.5) gives no pair, and every row it scored is counted', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const wh = warehouseOn(ch);
    const t0 = Date.now() - 3_600_000;
    // v1 gives probabilities, v2 margins: 40 labelled rows scored by both, 3 more with a label of 3.
    const joined = Array.from({ length: 43 }, (_, i) => {
      const id = `m${String(i).padStart(2, '0')}`;
      const y = i % 2;
      return {
        prediction: prediction(id, t0 + i * 1_000, {
          scores: { v1: y === 1 ? 0.8 : 0.2, v2: y === 1 ? 2.5 : -2.5 },
          prediction: y === 1 ? 0.8 : 0.2,
        }),
        label: { ...label(id, t0 + i * 1_000 + 500), label: i >= 40 ? 3 : y },
        joinedAt: t0 + i * 1_000 + 501,
      };
    });
    // And 5 rows both versions score as probabilities: the only pairs.
    for (let i = 0; i < 5; i++) {
      const id = `ok${i}`;
      joined.push({
        prediction: prediction(id, t0 + 100_000 + i, { scores: { v1: 0.3, v2: 0.6 }, prediction: 0.3 }),
        label: { ...label(id, t0 + 100_000 + i), label: 1 },
        joinedAt: t0 + 100_001 + i,
      });
    }
    await wh.predictions.insertJoined(joined);
    await wh.predictions.insertJoined(joined.slice(0, 10)); // a replay: FINAL counts each row once
    const q = { model: 'fraud', incumbent: 'v1', challenger: 'v2', from: t0, limit: 3 };
    const read = await wh.predictions.readPairsCounted(q);
    expect(read.unusable).toEqual({ labelNotBinary: 3, scoreNotProbability: 40, unscored: 0 });
    expect(read.pairs.map((p) => p.predictionId)).toEqual(['ok0', 'ok1', 'ok2']);
    // From a later `from`: only the rows predicted since.
    expect((await wh.predictions.readPairsCounted({ ...q, from: t0 + 30_000 })).unusable).toEqual({
      labelNotBinary: 3,
      scoreNotProbability: 10,
      unscored: 0,
    });
    // Nothing paired at all: no pairs, nothing counted.
    expect(await wh.predictions.readPairsCounted({ ...q, challenger: 'v9' })).toEqual({
      pairs: [],
      unusable: { labelNotBinary: 0, scoreNotProbability: 0, unscored: 0 },
    });
    await ch.close();
  });
});

/** A labelled row of `fraud`/v1 for the label-clock tests, joined at `joinedAt`. */
function clockRow(id: string, labelTime: number, predictionTime: number, joinedAt: number) {
  return {
    model: 'fraud',
    model_version: 'v1',
    prediction_id: id,
    entity_id: 'e',
    prediction_time: chTime(predictionTime),
    label_time: chTime(labelTime),
    features: '{}',
    prediction: 0.3,
    predicted_class: null,
    label: 1,
    joined_at: chTime(joinedAt),
  };
}

describe("labeled_predictions: a model's label clock", () => {
  it('is the newest time before the wall clock, or the LABEL_CLOCK_QUORUM-th newest within the bound when later: one row dated ahead moves nothing', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const now = Date.now();
    const row = (id: string, labelTime: number, predictionTime: number) => clockRow(id, labelTime, predictionTime, now);
    expect(LABEL_CLOCK_QUORUM).toBe(5);
    // Seven rows a second apart, labelled 500 ms after their prediction: the 5th newest is r2.
    const rows = Array.from({ length: 7 }, (_, i) =>
      row(`r${i}`, now - 60_000 + i * 1_000 + 500, now - 60_000 + i * 1_000),
    );
    await ch.insert('labeled_predictions', [
      ...rows,
      // Dated ahead (a client's clock, within the allowed future): the newest of all, it moved the clock.
      row('ahead', now + 50 * 60_000 + 1_000, now + 50 * 60_000),
      // A time no event may have: left out by the bound.
      row('b', Date.UTC(2099, 0, 1), now - 1_000),
    ]);
    const predictions = warehouseOn(ch).predictions;
    const bound = now + 3_600_000;
    // Behind the wall clock, the newest row moves it (r6), as it always did; the one row ahead does not.
    expect(await predictions.labelClock('fraud', now, bound)).toEqual({
      labelTime: now - 60_000 + 6_000 + 500,
      predictionTime: now - 60_000 + 6_000,
    });
    // Time ahead of the wall clock moves it once LABEL_CLOCK_QUORUM rows reach it: with the wall
    // clock at r1, the 5th newest within the bound (r3) is later than r1.
    expect(await predictions.labelClock('fraud', now - 60_000 + 1_600, bound)).toEqual({
      labelTime: now - 60_000 + 3_000 + 500,
      predictionTime: now - 60_000 + 3_000,
    });
    // Fewer rows within the bound than the quorum and none before the wall clock: the oldest of them.
    expect(await predictions.labelClock('fraud', now - 70_000, now - 60_000 + 1_600)).toEqual({
      labelTime: now - 60_000 + 500,
      predictionTime: now - 60_000,
    });
    expect(await predictions.labelClock('fraud', now - 80_000, now - 70_000)).toBeUndefined();
    expect(await predictions.labelClock('other', now, bound)).toBeUndefined();
  });

  it('counts each prediction once: one row written five times before a merge (redeliveries before the joiner acked) does not move it', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const table = ch.table('labeled_predictions');
    // No merge may fold the copies away before the read: a real table holds them until its next merge.
    await ch.command(`SYSTEM STOP MERGES ${table}`);
    const now = Date.now();
    const row = (id: string, labelTime: number, predictionTime: number) => clockRow(id, labelTime, predictionTime, now);
    await ch.insert(
      'labeled_predictions',
      Array.from({ length: 50 }, (_, i) => row(`r${i}`, now - 600_000 + i * 1_000 + 500, now - 600_000 + i * 1_000)),
    );
    const predictions = warehouseOn(ch).predictions;
    const bound = now + 3_600_000;
    const honest = await predictions.labelClock('fraud', now, bound);
    expect(honest).toEqual({ labelTime: now - 600_000 + 49_000 + 500, predictionTime: now - 600_000 + 49_000 });
    // One labelled prediction dated 55 min ahead, inserted five times (LABEL_CLOCK_QUORUM): it was
    // five rows to the read, met the quorum alone, and moved the clock 55 min ahead, so a
    // comparison with max_time 1h was rejected too_few_labels 55 min early.
    for (let k = 0; k < LABEL_CLOCK_QUORUM; k++) {
      await ch.insert('labeled_predictions', [row('ahead', now + 55 * 60_000 + 500, now + 55 * 60_000)]);
    }
    const copies = await ch.select<{ n: number | string }>(
      `SELECT count() AS n FROM ${table} WHERE prediction_id = 'ahead'`,
    );
    expect(Number(copies[0]?.n)).toBe(LABEL_CLOCK_QUORUM);
    expect(await predictions.labelClock('fraud', now, bound)).toEqual(honest);
    // Five distinct predictions there do move it (event time running ahead as a whole).
    for (let k = 0; k < LABEL_CLOCK_QUORUM - 1; k++) {
      await ch.insert('labeled_predictions', [row(`ahead${k}`, now + 56 * 60_000 + 500, now + 56 * 60_000)]);
    }
    expect(await predictions.labelClock('fraud', now, bound)).toEqual({
      labelTime: now + 55 * 60_000 + 500,
      predictionTime: now + 55 * 60_000,
    });
    await ch.command(`SYSTEM START MERGES ${table}`);
    await ch.close();
  });
});

describe("labeled_predictions: a model's label delays by class (the controller's label-order warning)", () => {
  it('counts and medians of label_time − prediction_time for labels 0 and 1 predicted since a time, any version; other labels and models left out', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const H = 3_600_000;
    const t0 = Date.UTC(2026, 0, 1);
    const row = (id: string, label: number, predictionTime: number, delay: number, extra: object = {}) => ({
      ...clockRow(id, predictionTime + delay, predictionTime, predictionTime + delay),
      label,
      ...extra,
    });
    await ch.insert('labeled_predictions', [
      // Positives 1, 2, 3 h after their prediction; negatives 10, 20, 30, 40 h (two on v2).
      ...[1, 2, 3].map((h, i) => row(`p${i}`, 1, t0 + i * H, h * H)),
      ...[10, 20, 30, 40].map((h, i) => row(`n${i}`, 0, t0 + i * H, h * H, i < 2 ? { model_version: 'v2' } : {})),
      // Predicted before `since`: left out.
      row('old', 1, t0 - 10 * H, 500 * H),
      // A regression label and another model's: left out.
      row('r', 0.5, t0, 1_000 * H),
      row('other', 1, t0, 1_000 * H, { model: 'other' }),
    ]);
    const delays = await warehouseOn(ch).predictions.labelDelays('fraud', t0);
    expect(delays.positives).toBe(3);
    expect(delays.negatives).toBe(4);
    // quantile(0.5) interpolates: 2 h of 1, 2, 3; 25 h of 10, 20, 30, 40.
    expect(delays.positiveMedianMs).toBe(2 * H);
    expect(delays.negativeMedianMs).toBe(25 * H);
    expect(await warehouseOn(ch).predictions.labelDelays('nobody', t0)).toEqual({
      positives: 0,
      negatives: 0,
      positiveMedianMs: Number.NaN,
      negativeMedianMs: Number.NaN,
    });
  });
});

describe('predictions: whether a version answered since a time (a rollback watch with no pair)', () => {
  it('reads model_version of production answers (labelled or expired rows), whatever the scores map holds', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const wh = warehouseOn(ch);
    const since = Date.now() - 3_600_000;
    const joined = (
      id: string,
      t: number,
      extra: Partial<PredictionEvent> & { scores?: Record<string, number> | null },
    ) => ({
      prediction: prediction(id, t, extra),
      label: label(id, t + 1_000),
      joinedAt: t + 1_001,
    });
    await wh.predictions.insertJoined([
      // v2 answered after `since`, with no scores map (the SDK, an outside producer): no pair, answered.
      joined('a1', since + 60_000, { model_version: 'v2', scores: null }),
      // v1 answered only before `since`; v3 only scored (in v1's map), never answered.
      joined('a2', since - 60_000, { model_version: 'v1', scores: { v1: 0.2, v3: 0.4 } }),
      joined('a3', since - 1, { model_version: 'v1', scores: { v1: 0.2, v3: 0.4 } }),
      // Another model's v5 answered: not fraud's.
      joined('a4', since + 60_000, { model: 'churn', model_version: 'v5' }),
      // v6 answered after `since` as a canary only: not an answer as production (found by a review).
      joined('a5', since + 3_000, { model_version: 'v6', role: 'canary' }),
    ]);
    // v4 answered after `since`, its prediction expired with no label: it answered all the same.
    await wh.predictions.insertExpired([
      { prediction: prediction('x1', since + 120_000, { model_version: 'v4' }), deadline: since, expiredAt: since },
    ]);
    const answered = (model: string, version: string, from = since) =>
      wh.predictions.answeredSince(model, version, from);
    expect(await answered('fraud', 'v2')).toBe(true);
    expect(await answered('fraud', 'v4')).toBe(true);
    expect(await answered('fraud', 'v1')).toBe(false); // its rows are all predicted before `since`
    expect(await answered('fraud', 'v1', since - 1)).toBe(true); // `since` is inclusive
    expect(await answered('fraud', 'v3')).toBe(false); // scored, never answered
    expect(await answered('fraud', 'v5')).toBe(false);
    expect(await answered('churn', 'v5')).toBe(true);
    expect(await answered('fraud', 'v2', since + 60_001)).toBe(false);
    expect(await answered('fraud', 'v6')).toBe(false);
    await ch.close();
  });
});

describe("labeled_predictions: a comparison's pairs come from the requests it is about (found by a review)", () => {
  it('answeredBy: production-answered rows carrying both scores are no canary or watch pairs; each row feeds one of them', async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const wh = warehouseOn(ch);
    const t0 = Date.now() - 3_600_000;
    // As the model server logs them: v1 answers as production with v2 shadow-scored; v2 answers its
    // canary share with production's score too; after the promotion v2 answers as production with
    // the replaced v1 still scored. Every row carries both scores.
    const rows = [
      ['s1', 'v1', 'production', { v1: 0.2, v2: 0.7 }, 1],
      ['s2', 'v1', 'production', { v1: 0.4, v2: 0.6 }, 0],
      ['s3', 'v1', 'production', { v1: 0.3, v2: 0.1 }, 2], // a label the test cannot use
      ['c1', 'v2', 'canary', { v2: 0.8, v1: 0.3 }, 1],
      ['c2', 'v2', 'canary', { v2: 2.5, v1: 0.3 }, 1], // a margin: unusable
      ['c3', 'v2', 'canary', { v2: 0.1, v1: 0.5 }, 0],
      ['w1', 'v2', 'production', { v2: 0.9, v1: 0.6 }, 1],
      ['w2', 'v2', 'production', { v2: 0.2, v1: 0.1 }, 0],
    ] as const;
    await wh.predictions.insertJoined(
      rows.map(([id, version, role, scores, y], i) => ({
        prediction: prediction(id, t0 + i * 1_000, {
          model_version: version,
          role,
          scores: { ...scores },
          prediction: scores[version as 'v1'],
        }),
        label: { ...label(id, t0 + i * 1_000 + 500), label: y },
        joinedAt: t0 + i * 1_000 + 501,
      })),
    );
    const read = async (incumbent: string, challenger: string, answeredBy?: { version: string; role: string }) => {
      const r = await wh.predictions.readPairsCounted({
        model: 'fraud',
        incumbent,
        challenger,
        from: t0,
        limit: 100,
        ...(answeredBy === undefined ? {} : { answeredBy }),
      });
      return { ids: r.pairs.map((p) => p.predictionId), unusable: r.unusable };
    };
    // The shadow test of v2: v1's production answers only.
    expect(await read('v1', 'v2', { version: 'v1', role: 'production' })).toEqual({
      ids: ['s1', 's2'],
      unusable: { labelNotBinary: 1, scoreNotProbability: 0, unscored: 0 },
    });
    // v2's canary test: its canary answers only, never the production-answered rows that carry its score.
    expect(await read('v1', 'v2', { version: 'v2', role: 'canary' })).toEqual({
      ids: ['c1', 'c3'],
      unusable: { labelNotBinary: 0, scoreNotProbability: 1, unscored: 0 },
    });
    // The rollback watch of v2: its production answers only (neither v1's nor its own canary answers).
    expect(await read('v2', 'v1', { version: 'v2', role: 'production' })).toEqual({
      ids: ['w1', 'w2'],
      unusable: { labelNotBinary: 0, scoreNotProbability: 0, unscored: 0 },
    });
    // A version in a role it never answered in: nothing.
    expect(await read('v1', 'v2', { version: 'v1', role: 'canary' })).toEqual({
      ids: [],
      unusable: { labelNotBinary: 0, scoreNotProbability: 0, unscored: 0 },
    });
    // Without answeredBy: whatever answered (a read of the data, not a comparison's).
    expect((await read('v1', 'v2')).ids).toEqual(['s1', 's2', 'c1', 'c3', 'w1', 'w2']);
    await ch.close();
  });

  it("unscored (0700): in a canary's read, the requests of its share production answered and a version that could not score (null); a shadow's pairs are scored by both, the others counted", async () => {
    const ch = await createClickHouse({ mode: 'embedded', path, database: database() });
    await migrate(ch, migrations);
    const wh = warehouseOn(ch);
    const t0 = Date.now() - 3_600_000;
    // As the model server logs them: v2 as a shadow, then as a canary of v1; a version that could
    // not score the instance is named in `unscored` with its role, and has no score.
    const rows = [
      ['s1', 'v1', 'production', { v1: 0.2, v2: 0.7 }, {}],
      ['s2', 'v1', 'production', { v1: 0.4 }, { v2: 'shadow' }],
      ['c1', 'v2', 'canary', { v2: 0.8, v1: 0.3 }, {}],
      // v2's share, production answering for it: the canary's evidence, not production's.
      ['c2', 'v1', 'production', { v1: 0.6 }, { v2: 'canary' }],
      // Production beside the answering canary could not score.
      ['c3', 'v2', 'canary', { v2: 0.1 }, { v1: 'production' }],
      ['c4', 'v2', 'canary', { v2: 1.5 }, { v1: 'production' }], // a margin: unusable
      ['o1', 'v1', 'production', { v1: 0.5 }, { v3: 'shadow' }], // another version: no pair of v1/v2
      // A canary's share answered by production is its canary's evidence alone, never a shadow test's.
      ['o2', 'v1', 'production', { v1: 0.5, v3: 0.4 }, { v2: 'canary' }],
      // Before a rollback of production v0 to v1 (v1 watched, so scored beside it): v0 answered
      // for the canary; the canary's comparison with v1 reads it (found by a review).
      ['r1', 'v0', 'production', { v0: 0.7, v1: 0.2 }, { v2: 'canary' }],
    ] as const;
    await wh.predictions.insertJoined(
      rows.map(([id, version, role, scores, unscored], i) => ({
        prediction: prediction(id, t0 + i * 1_000, {
          model_version: version,
          role,
          scores: { ...scores },
          unscored: { ...unscored },
          prediction: (scores as Record<string, number>)[version]!,
        }),
        label: { ...label(id, t0 + i * 1_000 + 500), label: i % 2 },
        joinedAt: t0 + i * 1_000 + 501,
      })),
    );
    const read = async (answeredBy: { version: string; role: string }, challenger = 'v2') => {
      const r = await wh.predictions.readPairsCounted({
        model: 'fraud',
        incumbent: 'v1',
        challenger,
        from: t0,
        limit: 100,
        answeredBy,
      });
      return { pairs: r.pairs.map((p) => [p.predictionId, p.incumbent, p.challenger]), unusable: r.unusable };
    };
    // v2's shadow test: pairs scored by both; s2, c2 and o2 (v2 unscored) counted apart.
    expect(await read({ version: 'v1', role: 'production' })).toEqual({
      pairs: [['s1', 0.2, 0.7]],
      unusable: { labelNotBinary: 0, scoreNotProbability: 0, unscored: 3 },
    });
    expect(await read({ version: 'v2', role: 'canary' })).toEqual({
      pairs: [
        ['c1', 0.3, 0.8],
        ['c2', 0.6, null],
        ['c3', null, 0.1],
        ['o2', 0.5, null],
        ['r1', 0.2, null],
      ],
      unusable: { labelNotBinary: 0, scoreNotProbability: 1, unscored: 0 },
    });
    // v3's shadow test: o2 scored by both; o1 (v3 unscored as a shadow) counted apart.
    expect(await read({ version: 'v1', role: 'production' }, 'v3')).toEqual({
      pairs: [['o2', 0.5, 0.4]],
      unusable: { labelNotBinary: 0, scoreNotProbability: 0, unscored: 1 },
    });
    // A row with no unscored version holds an empty map.
    expect(
      await ch.select(`SELECT unscored FROM ${ch.table('labeled_predictions')} WHERE prediction_id = 's1'`),
    ).toEqual([{ unscored: {} }]);
    await ch.close();
  });
});
