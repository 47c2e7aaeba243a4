// Cost of the skew-monitor's batch processing without I/O: predictions through decode + process
// per second on the in-memory online store and an in-memory skew_windows. Prints JSON; not a test.
// pnpm exec tsx --conditions=source services/skew-monitor/bench/run.ts
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import type { DecodedRecord, InboundRecord } from '@driftline/kafka';
import { InMemoryOnlineStore } from '@driftline/online-store';
import type { FeatureEvent, PredictionEvent } from '@driftline/schemas';
import { featureSources } from '@driftline/skew';
import type { SkewPartialRow, SkewWindowStore } from '@driftline/warehouse';
import { type SkewRecord, skewProcessor } from '../src/processor.js';

const FEATURES = 20;
const ENTITIES = 1000;
const BATCH = 500;
const views = parseFeatureViewsText(
  `views:\n  - name: v\n    entity: id\n    features: { ${Array.from({ length: FEATURES }, (_, i) => `f${i}: double`).join(', ')} }\n`,
);
const T0 = Date.UTC(2026, 0, 1);

class NullSkewStore implements SkewWindowStore {
  rows = 0;
  async write(rows: readonly SkewPartialRow[]) {
    this.rows += rows.length;
  }
  async latestLog() {
    return { epoch: 0 };
  }
  async partials() {
    return [];
  }
  async totals() {
    return [];
  }
  async windowsEnding() {
    return [];
  }
}

async function run(rate: number, n: number) {
  const store = new InMemoryOnlineStore({ now: () => T0 });
  const events: FeatureEvent[] = Array.from({ length: ENTITIES }, (_, e) => ({
    event_id: `e${e}`,
    view: 'v',
    entity_id: `u${e}`,
    event_time: T0 - 1000,
    features: Object.fromEntries(Array.from({ length: FEATURES }, (_, i) => [`f${i}`, e * i])),
  }));
  await store.write(planWrites(events.map((e) => validateFeatureEvent(views, e))));
  const predictions: PredictionEvent[] = Array.from({ length: n }, (_, k) => ({
    prediction_id: `p${k}`,
    model: 'm',
    model_version: 'v1',
    entity_id: `u${k % ENTITIES}`,
    event_time: T0 + k,
    features: Object.fromEntries(Array.from({ length: FEATURES }, (_, i) => [`f${i}`, (k % ENTITIES) * i])),
    prediction: 0.5,
    predicted_class: null,
    role: 'production',
    scores: null,
  }));
  const processor = skewProcessor({
    store,
    skew: new NullSkewStore(),
    sources: featureSources(views),
    windowMs: 60_000,
    sampleRate: rate,
    tolerance: { relative: 1e-9, absolute: 0 },
    rule: { maxShareMismatched: 0.01, minCompared: 30 },
    // The Avro decode is excluded: the record's value is the index of an already decoded event.
    decode: async (v) => predictions[Number(v!.toString())]!,
    publish: async () => {},
    eventTime: { maxFutureMs: 86_400_000 * 365, minMs: 0 },
  });
  const records: InboundRecord[] = predictions.map((_, i) => ({
    topic: 't',
    partition: 0,
    offset: String(i),
    key: null,
    value: Buffer.from(String(i)),
    headers: {},
    timestamp: 0,
  }));
  const started = performance.now();
  for (let i = 0; i < records.length; i += BATCH) {
    const items: Array<DecodedRecord<SkewRecord>> = [];
    for (const record of records.slice(i, i + BATCH)) items.push({ record, value: await processor.decode(record) });
    await processor.process(items, { topic: 't', partition: 0, highWatermark: '0' });
  }
  const seconds = (performance.now() - started) / 1000;
  return { predictions_per_s: Math.round(n / seconds), values_per_s: Math.round((n * FEATURES) / seconds) };
}

const out: Record<string, unknown> = { features: FEATURES, batch: BATCH };
for (const rate of [0, 0.05, 1]) out[`rate_${rate}`] = await run(rate, 100_000);
process.stdout.write(`${JSON.stringify(out)}\n`);
