import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { ARRIVAL_GRACE_MS, parseRolloutPolicy } from '@driftline/policy';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import { createClickHouse, type JoinedRow, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { ModelController } from '../src/controller.js';

// The controller over the embedded ClickHouse (chdb) with the DEFAULT arrival_bucket (1 h): every
// other controller test on a warehouse sets arrival_bucket 0 (found by a regression review). The
// wall clock is injected: the buckets are hours back from the real one.

const H = 3_600_000;
const path = mkdtempSync(join(tmpdir(), 'driftline-ch-default-arrival-'));

/** A labelled production answer of v1 with both versions' scores, joined at `joinedAt`. */
function joined(id: string, predictedAt: number, joinedAt: number, label: 0 | 1, v2: number): JoinedRow {
  const prediction: PredictionEvent & { scores: Record<string, number> } = {
    prediction_id: id,
    model: 'fraud',
    model_version: 'v1',
    entity_id: `e-${id}`,
    event_time: predictedAt,
    features: { f0: 1 },
    prediction: 0.5,
    predicted_class: null,
    role: 'production',
    scores: { v1: 0.5, v2 },
  };
  const labelEvent: LabelEvent = {
    prediction_id: id,
    model: 'fraud',
    event_time: predictedAt + 500,
    label,
    value: null,
  };
  return { prediction, label: labelEvent, joinedAt };
}

describe('the model-controller on ClickHouse with the default arrival_bucket', () => {
  it('reads closed hourly buckets only, counts pairs inserted into a bucket already read, warns of a joiner clock ahead, and promotes on the closed buckets', async () => {
    const ch = await createClickHouse({
      mode: 'embedded',
      path,
      database: `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`,
    });
    await migrate(ch, migrations);
    const wh = warehouseOn(ch);
    const b0 = Math.floor(Date.now() / H) * H - 6 * H;
    await wh.transitions.record(
      (
        [
          ['v1', 'canary', 'production', b0 - 2 * H, null],
          ['v2', null, 'candidate', b0, null],
          ['v2', 'candidate', 'shadow', b0, 'v1'],
        ] as const
      ).map(([version, from, to, at, previous]) => ({
        model: 'fraud',
        version,
        from_stage: from,
        to_stage: to,
        at,
        decided_by: 'trainer:offline_gate',
        reason: 'offline_gate',
        detail: '',
        evidence: '',
        canary_share: null,
        previous_version: previous,
        recorded_at: at,
      })),
    );
    const label = (i: number) => (i % 5 < 2 ? 1 : 0) as 0 | 1;
    // Bucket A [b0, b0 + 1 h): 20 pairs; bucket B [b0 + 1 h, b0 + 2 h): 200; v2 far better.
    await wh.predictions.insertJoined([
      ...Array.from({ length: 20 }, (_, i) =>
        joined(`a${i}`, b0 + i * 1_000, b0 + 60_000, label(i), label(i) ? 0.9 : 0.1),
      ),
      ...Array.from({ length: 200 }, (_, i) =>
        joined(`b${i}`, b0 + 100_000 + i * 1_000, b0 + H + 60_000, label(i), label(i) ? 0.9 : 0.1),
      ),
      // Five joined by a label-joiner whose clock runs 3 h ahead of this host's (predicted early:
      // they do not move the label clock): they wait for their bucket.
      ...Array.from({ length: 5 }, (_, i) => joined(`x${i}`, b0 + 50_000 + i, b0 + 4 * H, label(i), 0.5)),
    ]);
    const warnings: Array<{ msg: string } & Record<string, unknown>> = [];
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    let now = b0 + H + ARRIVAL_GRACE_MS;
    const controller = new ModelController({
      transitions: wh.transitions,
      pairs: {
        readPairs: (q) => wh.predictions.readPairsCounted(q),
        labelClock: (model, at, notAfter) => wh.predictions.labelClock(model, at, notAfter),
        answeredSince: (model, version, since) => wh.predictions.answeredSince(model, version, since),
      },
      publish: async () => {},
      policies: parseRolloutPolicy({ defaults: { promotion: { min_labels: 100, max_time: '7d' } } }),
      maxPairs: 100_000,
      logger: { ...silentLogger, warn: (o: object, msg?: string) => void warnings.push({ ...o, msg: String(msg) }) },
      registry,
      now: () => now,
    });
    const value = async (metric: string) =>
      (await registry.getSingleMetric(metric)?.get())?.values.find((v) => v.labels.model === 'fraud')?.value;
    // Bucket A closed: its 20 pairs read, not enough to decide; the joiner ahead is said.
    expect((await controller.tick()).transitions).toEqual([]);
    expect(await value('driftline_model_controller_comparison_labels')).toBe(20);
    const ahead = warnings.filter((w) => w.msg.startsWith("paired rows joined after this host's clock"));
    expect(ahead).toEqual([expect.objectContaining({ model: 'fraud', behind_ms: 3 * H - ARRIVAL_GRACE_MS })]);
    // Four rows joined in bucket A's last seconds, inserted after it was read (an outage).
    await wh.predictions.insertJoined(
      Array.from({ length: 4 }, (_, i) => joined(`late${i}`, b0 + 30_000 + i, b0 + H - 5_000, 1, 0.9)),
    );
    now += 10 * 60_000;
    expect((await controller.tick()).transitions).toEqual([]);
    expect(await value('driftline_model_controller_comparison_labels')).toBe(24);
    expect(await value('driftline_model_controller_late_arrivals_total')).toBe(4);
    expect(warnings.filter((w) => w.msg.startsWith('pairs were inserted into arrival buckets'))).toHaveLength(1);
    // Bucket B closed: the shadow is promoted on the closed buckets.
    now = b0 + 2 * H + ARRIVAL_GRACE_MS;
    const [decided] = (await controller.tick()).transitions;
    expect(decided).toMatchObject({ version: 'v2', from_stage: 'shadow', to_stage: 'canary', reason: 'evidence' });
    await ch.close();
  }, 120_000);
});
