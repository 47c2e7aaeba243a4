import {
  ConfigError,
  DEFAULT_EVENT_TIME_BOUNDS,
  DriftlineError,
  type Logger,
  silentLogger,
  toDriftlineError,
} from '@driftline/core';
import {
  DEFAULT_THRESHOLDS,
  decodePartials,
  LATE_ONLY_FEATURE,
  LATE_ONLY_METHOD,
  type PartialsMessage,
  type ReferenceSet,
  referenceSet,
} from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import { expectationSet } from '@driftline/quality';
import type { DriftAlert, PredictionEvent } from '@driftline/schemas';
import {
  buildNumericProfile,
  KS_EXACT_P_WINDOW_BUDGET,
  ksAsymptoticPValue,
  ksExactCells,
  ksFromSummary,
  ksPValue,
  NumericSummary,
} from '@driftline/stats';
import {
  chTime,
  type DataQualityRow,
  type DriftQuarantineRow,
  type DriftWindowRow,
  type Progress,
  type ProgressStore,
  type ReferenceStore,
} from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { mergeProcessor } from '../src/merge-stage.js';
import { type DriftMetrics, driftMetrics } from '../src/metrics.js';
import { ReferenceCache } from '../src/reference-cache.js';
import { stageOneProcessor } from '../src/stage-one.js';
import { memoryProgress, stageOnePartialsOfW0, warnings, writtenReferences } from './support.js';

/** Wall clock: windows of 1 s just before it. */
const NOW = Date.UTC(2024, 11, 2, 12, 0, 0);
const W0 = NOW - 10_000;

const profile = buildNumericProfile(Array.from({ length: 100 }, (_, i) => i));
const refs = new Map<string, ReferenceSet>(
  ['m', 'n'].map((model) => [model, referenceSet(model, 'v1', new Map([['x', profile]]))]),
);
const store: ReferenceStore = {
  save: async () => {},
  latest: async (model) => refs.get(model),
  byId: async (id) => [...refs.values()].find((r) => r.referenceId === id),
  newest: async () => [...refs.values()],
  catalog: async () =>
    [...refs.values()].map((r) => ({ model: r.model, version: r.version, referenceId: r.referenceId })),
};

/** The partials the real stage one, reading these predictions on one source partition, emits. */
async function stageOnePartials(
  references: ReferenceStore,
  events: readonly PredictionEvent[],
  source = { partition: 0, partitions: 1 },
): Promise<PartialsMessage[]> {
  const out: PartialsMessage[] = [];
  const stageOne = stageOneProcessor({
    spec: { sizeMs: 1000, latenessMs: 0 },
    references: new ReferenceCache(references),
    progress: memoryProgress(),
    group: 'g',
    sourceTopic: 'p',
    sourcePartitions: source.partitions,
    mergePartitions: 1,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    now: () => NOW,
    decode: async () => {
      throw new Error('not used');
    },
    emit: async (messages) => {
      for (const m of messages) out.push(decodePartials(m.value));
    },
  });
  const items: DecodedRecord<PredictionEvent>[] = events.map((value, i) => ({
    record: { topic: 'p', partition: 0, offset: String(i), key: null, value: null, headers: {}, timestamp: 0 },
    value,
  }));
  await stageOne.process(items, { topic: 'p', partition: source.partition, highWatermark: '0' });
  return out;
}

/** The partials stage one emits for predictions of models m and n at these times (by default one source partition). */
function partialsFor(times: number[], source = { partition: 0, partitions: 1 }): Promise<PartialsMessage[]> {
  const events = times.flatMap((t, i) =>
    ['m', 'n'].map(
      (model): PredictionEvent => ({
        prediction_id: `${model}${i}`,
        model,
        model_version: 'v1',
        entity_id: 'e',
        event_time: t,
        features: { x: (i * 7) % 100 },
        prediction: 0,
        predicted_class: null,
      }),
    ),
  );
  return stageOnePartials(store, events, source);
}

/** What the consumer loop does with a processed batch: retry nothing, bisect a non-retriable failure into the DLQ. */
async function deliver(
  process: (items: DecodedRecord<PartialsMessage>[]) => Promise<unknown>,
  items: DecodedRecord<PartialsMessage>[],
): Promise<string[]> {
  try {
    await process(items);
    return [];
  } catch (thrown) {
    const error = toDriftlineError(thrown);
    if (error.retriable) throw error;
    if (items.length === 1) return [`${items[0]!.record.offset}: ${error.message}`];
    const middle = Math.ceil(items.length / 2);
    return [...(await deliver(process, items.slice(0, middle))), ...(await deliver(process, items.slice(middle)))];
  }
}

function setup(
  options: {
    rejectWindow?: number;
    rejectModel?: string;
    clock?: () => number;
    metrics?: DriftMetrics;
    logger?: Logger;
    alertMinEvents?: number;
    references?: ReferenceCache;
    progress?: ProgressStore;
  } = {},
) {
  const rows: DriftWindowRow[] = [];
  const quarantined: DriftQuarantineRow[] = [];
  const alerts: DriftAlert[] = [];
  const merge = mergeProcessor({
    driftWindows: {
      insert: async (batch) => {
        const poison = batch.find(
          (r) => r.window_start === chTime(options.rejectWindow ?? -1) && r.model === (options.rejectModel ?? r.model),
        );
        // What the warehouse makes of a row ClickHouse refuses (e.g. CANNOT_PARSE_INPUT…): poison.
        if (poison !== undefined)
          throw new DriftlineError('SINK_REJECTED', `drift_windows: row refused (${poison.model})`);
        rows.push(...batch);
      },
      writtenReferences: async (model, version, windowStart, windowEnd) =>
        writtenReferences(rows, model, version, windowStart, windowEnd),
    },
    quarantine: {
      insert: async (batch) => {
        quarantined.push(...batch);
      },
    },
    references: options.references ?? new ReferenceCache(store),
    progress: options.progress ?? memoryProgress(),
    group: 'g-merge',
    idleTimeoutMs: 60_000,
    windowMs: 1000,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    thresholds: DEFAULT_THRESHOLDS,
    primary: 'psi',
    alertShare: 0.5,
    alertMinEvents: options.alertMinEvents ?? 1,
    logger: options.logger ?? silentLogger,
    now: options.clock ?? (() => NOW),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    sendAlerts: async (batch) => {
      alerts.push(...batch);
    },
  });
  let offset = 0;
  const ctx = { topic: 'drift.partials.v1', partition: 0, highWatermark: '0' };
  const batch = (messages: PartialsMessage[]): DecodedRecord<PartialsMessage>[] =>
    messages.map((value) => ({
      record: {
        topic: ctx.topic,
        partition: 0,
        offset: String(offset++),
        key: null,
        value: null,
        headers: {},
        timestamp: 0,
      },
      value,
    }));
  const commits: string[] = [];
  const consume = (messages: PartialsMessage[]) =>
    deliver(async (items) => {
      const result = await merge.process(items, ctx);
      if (result?.commitOffset !== undefined) commits.push(result.commitOffset);
    }, batch(messages));
  return { consume, rows, quarantined, alerts, commits, merge };
}

const windowsOf = (rows: readonly DriftWindowRow[]) =>
  [...new Set(rows.map((r) => `${r.model}@${r.window_start}`))].sort();

describe('merge stage: drift alerts need DRIFTLINE_DRIFT_ALERT_MIN_EVENTS events', () => {
  it('a window of a few events writes its rows but raises no drift alert below the minimum', async () => {
    const drift = (a: readonly DriftAlert[]) =>
      a.filter((x) => x.kind === 'FEATURE_DRIFT' || x.kind === 'PREDICTION_DRIFT');
    const messages = await partialsFor([W0 + 100, W0 + 200, W0 + 300, W0 + 1100]); // closes W0: 3 events per model
    const loose = setup({ alertMinEvents: 1 });
    expect(await loose.consume(messages)).toEqual([]);
    expect(drift(loose.alerts).length).toBeGreaterThan(0); // three events do look drifted
    const strict = setup({ alertMinEvents: 100 });
    expect(await strict.consume(messages)).toEqual([]);
    expect(drift(strict.alerts)).toEqual([]);
    expect(windowsOf(strict.rows)).toEqual(windowsOf(loose.rows));
    expect(strict.rows.length).toBe(loose.rows.length);
  });
});

describe('merge stage: one poison window does not poison the stream', () => {
  it('quarantines a window whose drift rows the warehouse rejects; later windows on the partition land', async () => {
    const first = await partialsFor([W0 + 100, W0 + 200, W0 + 1100, W0 + 1200, W0 + 2100]); // closes W0, W0+1000
    const second = await partialsFor([W0 + 2100, W0 + 2200, W0 + 3100]); // closes W0+2000
    const { consume, rows, quarantined, alerts, commits } = setup({ rejectWindow: W0 + 1000, rejectModel: 'm' });

    expect(await consume(first)).toEqual([]); // nothing blamed, nothing in the DLQ
    expect(await consume(second.filter((m) => m.windowStart === W0 + 2000))).toEqual([]);

    expect(windowsOf(rows)).toEqual([
      `m@${chTime(W0)}`,
      `m@${chTime(W0 + 2000)}`,
      `n@${chTime(W0)}`,
      `n@${chTime(W0 + 1000)}`, // the other model of the quarantined window still lands
      `n@${chTime(W0 + 2000)}`,
    ]);
    expect(quarantined).toEqual([
      expect.objectContaining({
        model: 'm',
        version: 'v1',
        window_start: chTime(W0 + 1000),
        window_end: chTime(W0 + 2000),
        code: 'SINK_REJECTED',
        reason: expect.stringContaining('row refused'),
      }),
    ]);
    const q = alerts.filter((a) => a.kind === 'DRIFT_WINDOW_QUARANTINED');
    expect(q).toEqual([
      expect.objectContaining({ model: 'm', model_version: 'v1', window_start: W0 + 1000, window_end: W0 + 2000 }),
    ]);
    expect(commits.at(-1)).toBe(String(first.length + second.filter((m) => m.windowStart === W0 + 2000).length));
  });

  it('quarantines a window whose partials cannot be merged (a summary that does not fit the reference)', async () => {
    const first = await partialsFor([W0 + 100, W0 + 1100]); // closes W0
    const later = await partialsFor([W0 + 100, W0 + 1100, W0 + 2100]); // closes W0, W0+1000
    // A corrupt partial of model m for W0: decodes, but its summary names another profile.
    const corrupt = first.map((msg) =>
      msg.type === 'partial' && msg.model === 'm'
        ? { ...msg, summaries: { x: { ...msg.summaries.x!, profileId: 'another-profile' } } }
        : msg,
    );
    const { consume, rows, quarantined, alerts } = setup();
    expect(await consume(corrupt)).toEqual([]);
    expect(await consume(later.filter((m) => m.windowStart === W0 + 1000))).toEqual([]);
    expect(windowsOf(rows)).toEqual([`m@${chTime(W0 + 1000)}`, `n@${chTime(W0)}`, `n@${chTime(W0 + 1000)}`]);
    expect(quarantined.map((r) => [r.model, r.window_start, r.code])).toEqual([['m', chTime(W0), expect.any(String)]]);
    expect(alerts.filter((a) => a.kind === 'DRIFT_WINDOW_QUARANTINED')).toHaveLength(1);
  });
});

// A review: chdb's `store/` replaced by a file, every insert failed as `unknown` (SINK_REJECTED):
// W2's drift_windows rows were refused, the group quarantined, then the progress save failed too,
// so every merge tick retried the window and quarantined it again: 41 DRIFT_WINDOW_QUARANTINED
// alerts of one id, quarantined_total 41.
describe('merge stage: the progress save after a quarantine fails', () => {
  it('is retriable, and the retries quarantine the window once: one row, one alert, one count', async () => {
    let failures = 4; // the batch's save and three ticks' fail, the fourth tick's goes through
    const saved: Progress[] = [];
    const progress: ProgressStore = {
      load: async () => undefined,
      save: async (_s, _g, _t, _p, p) => {
        if (failures-- > 0) {
          // What the warehouse made of chdb's error before ENOTDIR was classified: not retriable.
          throw new DriftlineError(
            'SINK_REJECTED',
            'clickhouse insert into drift_progress: STD_EXCEPTION (1001): std::__1::filesystem::filesystem_error: filesystem error: in create_directories: Not a directory ["/data/store/e81"].',
          );
        }
        saved.push(p);
      },
    };
    const metrics = driftMetrics(createMetricsRegistry({ service: 'drift-monitor', defaultMetrics: false }));
    const first = await partialsFor([W0 + 100, W0 + 200, W0 + 1100]); // closes W0
    const { consume, merge, rows, quarantined, alerts, commits } = setup({
      rejectWindow: W0,
      rejectModel: 'm',
      progress,
      metrics,
    });
    // Retriable: the consumer retries the batch, nothing is bisected into the DLQ.
    await expect(consume(first)).rejects.toMatchObject({ code: 'SINK_UNAVAILABLE', retriable: true });
    for (let tick = 0; tick < 4; tick++) await merge.tick();
    expect(saved).toEqual([{ position: W0, offset: 0 }]);
    expect(alerts.filter((a) => a.kind === 'DRIFT_WINDOW_QUARANTINED')).toEqual([
      expect.objectContaining({ model: 'm', window_start: W0 }),
    ]);
    expect(quarantined.map((r) => [r.model, r.window_start])).toEqual([['m', chTime(W0)]]);
    expect((await metrics.windowsQuarantined.get()).values.map((v) => v.value)).toEqual([1]);
    // The other model of the window is written (again on each retry: the same keys, idempotent).
    expect(windowsOf(rows)).toEqual([`n@${chTime(W0)}`]);
    // The window is done: later windows land, the batch retried commits.
    const later = await partialsFor([W0 + 1100, W0 + 2100]); // closes W0+1000
    expect(await consume(later.filter((m) => m.windowStart === W0 + 1000))).toEqual([]);
    expect(windowsOf(rows)).toEqual([`m@${chTime(W0 + 1000)}`, `n@${chTime(W0)}`, `n@${chTime(W0 + 1000)}`]);
    expect(commits.length).toBeGreaterThan(0);
    expect(alerts.filter((a) => a.kind === 'DRIFT_WINDOW_QUARANTINED')).toHaveLength(1);
  });
});

// Partials summarised on a set the merge cannot read (a profile of another format stored again
// under the same content-hash id, read after a restart or an eviction from the cache): the store's
// ConfigError (CONFIG_INVALID) is not retriable, and a CONFIG_INVALID thrown out of the processor
// is a processor fault to the consumer, which holds the partition — every model of it.
describe('merge stage: a reference that cannot be read', () => {
  const FIELD = 'reference_profiles[m/v1/x].profile.format';
  /** The test's store, but the set of `model` cannot be read by id (its latest still can: stage one read it). */
  const unreadableById = (model: string): ReferenceStore => {
    const bad = refs.get(model)!.referenceId;
    return {
      ...store,
      byId: async (id) => {
        if (id === bad) throw new ConfigError(FIELD, 'expected "driftline.profile/1"');
        return store.byId(id);
      },
    };
  };

  it('quarantines the group measured on it (CONFIG_INVALID, naming the field), never throws: the other model and later windows land', async () => {
    const broken = unreadableById('m');
    const metrics = driftMetrics(createMetricsRegistry({ service: 'drift-monitor', defaultMetrics: false }));
    const errors: Array<[object, string | undefined]> = [];
    const logger: Logger = { ...silentLogger, error: (obj, msg) => void errors.push([obj, msg]), child: () => logger };
    const { consume, rows, quarantined, alerts, commits } = setup({
      references: new ReferenceCache(broken),
      metrics,
      logger,
    });
    const messages = await partialsFor([W0 + 100, W0 + 200, W0 + 1100, W0 + 2100]); // closes W0, W0+1000
    expect(await consume(messages)).toEqual([]); // nothing thrown, nothing blamed (no DLQ)
    expect(commits.at(-1)).toBe(String(messages.length));
    expect(windowsOf(rows)).toEqual([`n@${chTime(W0)}`, `n@${chTime(W0 + 1000)}`]);
    const ref = refs.get('m')!.referenceId;
    expect(quarantined.map((r) => [r.model, r.version, r.reference_id, r.window_start, r.code])).toEqual([
      ['m', 'v1', ref, chTime(W0), 'CONFIG_INVALID'],
      ['m', 'v1', ref, chTime(W0 + 1000), 'CONFIG_INVALID'],
    ]);
    expect(quarantined.every((r) => r.reason.startsWith(FIELD))).toBe(true);
    expect(alerts.filter((a) => a.kind === 'DRIFT_WINDOW_QUARANTINED').map((a) => [a.model, a.window_start])).toEqual([
      ['m', W0],
      ['m', W0 + 1000],
    ]);
    expect((await metrics.windowsQuarantined.get()).values).toEqual([
      expect.objectContaining({ labels: expect.objectContaining({ code: 'CONFIG_INVALID' }), value: 2 }),
    ]);
    // One error line per window, naming the model, version and reference.
    expect(errors.map(([obj]) => obj)).toEqual(
      [W0, W0 + 1000].map((windowStart) =>
        expect.objectContaining({ model: 'm', version: 'v1', referenceId: ref, windowStart, code: 'CONFIG_INVALID' }),
      ),
    );
  });
});

// A review sent 2 events dated in W0 and 1 in W7 after every window had closed: the metric said 3
// late, every drift_windows row said late_events 0 — the window they were counted in had no event
// of the model on time, so no statistic and no row.
describe('merge stage: late events in a window without an event on time', () => {
  it('reach drift_windows in a late-only row (no statistic, no alert)', async () => {
    const prediction = (model: string, id: string, t: number): PredictionEvent => ({
      prediction_id: id,
      model,
      model_version: 'v1',
      entity_id: 'e',
      event_time: t,
      features: { x: 5 },
      prediction: 0,
      predicted_class: null,
    });
    // n moves the clock past W0 and W1; three predictions of m dated in W0 are late, counted in the
    // window open then (W0+2000), which no event of m reaches on time; n closes it.
    const messages = await stageOnePartials(store, [
      prediction('n', 'n0', W0 + 100),
      prediction('n', 'n1', W0 + 2100),
      prediction('m', 'm0', W0 + 200),
      prediction('m', 'm1', W0 + 300),
      prediction('m', 'm2', W0 + 400),
      prediction('n', 'n2', W0 + 3100),
    ]);
    const late = messages.filter((m) => m.type === 'partial' && m.model === 'm');
    expect(late.map((m) => (m.type === 'partial' ? [m.windowStart, m.events, m.late] : []))).toEqual([
      [W0 + 2000, 0, 3],
    ]);
    const { consume, rows, alerts } = setup();
    expect(await consume(messages)).toEqual([]);
    expect(rows.filter((r) => r.model === 'm')).toEqual([
      expect.objectContaining({
        version: 'v1',
        feature: LATE_ONLY_FEATURE,
        method: LATE_ONLY_METHOD,
        window_start: chTime(W0 + 2000),
        events: 0,
        late_events: 3,
        drifted: 0,
        statistic: 0,
      }),
    ]);
    expect(alerts.filter((a) => a.model === 'm')).toEqual([]);
    // A window with events on time carries its late count on its own rows, as before: no late-only row.
    expect(rows.filter((r) => r.method === LATE_ONLY_METHOD)).toHaveLength(1);
  });
});

describe('merge stage: the per-feature drifted gauge of a feature that stopped arriving', () => {
  it('follows the verdict (not drifted: its missing_rate row does not decide), not left at the window it last arrived in', async () => {
    // Model k on x and y: y arrives in W0, drifted, and is absent from every event of W0+1000.
    const k = referenceSet(
      'k',
      'v1',
      new Map([
        ['x', profile],
        ['y', profile],
      ]),
    );
    const kStore: ReferenceStore = {
      save: async () => {},
      latest: async () => k,
      byId: async () => k,
      newest: async () => [k],
      catalog: async () => [{ model: 'k', version: 'v1', referenceId: k.referenceId }],
    };
    const event = (i: number, t: number, features: Record<string, number>): PredictionEvent => ({
      prediction_id: `k${i}`,
      model: 'k',
      model_version: 'v1',
      entity_id: 'e',
      event_time: t,
      features,
      prediction: 0,
      predicted_class: null,
    });
    const steady = (i: number) => (i * 7) % 100;
    const messages = await stageOnePartials(kStore, [
      ...Array.from({ length: 50 }, (_, i) => event(i, W0 + i, { x: steady(i), y: 1_000 + i })),
      ...Array.from({ length: 50 }, (_, i) => event(100 + i, W0 + 1000 + i, { x: steady(i) })),
      event(200, W0 + 2100, { x: 1 }),
    ]);
    const metrics = driftMetrics(createMetricsRegistry({ service: 'drift-monitor', defaultMetrics: false }));
    const { consume, rows, alerts } = setup({ metrics, references: new ReferenceCache(kStore) });
    const gauge = async () =>
      Object.fromEntries((await metrics.drifted.get()).values.map((v) => [String(v.labels.feature), v.value]));
    expect(await consume(messages.filter((m) => m.windowStart === W0))).toEqual([]);
    expect(await gauge()).toEqual({ x: 0, y: 1 });
    expect(await consume(messages.filter((m) => m.windowStart !== W0))).toEqual([]);
    const second = rows.filter((r) => r.window_start === chTime(W0 + 1000) && r.feature === 'y');
    expect(second.map((r) => [r.method, r.drifted])).toEqual([['missing_rate', 1]]);
    // No FEATURE_DRIFT for the window y is gone from (x steady); the gauge leaves W0's 1 behind.
    expect(alerts.filter((a) => a.kind === 'FEATURE_DRIFT').map((a) => a.window_start)).toEqual([W0]);
    expect(await gauge()).toEqual({ x: 0, y: 0 });
  });
});

describe('merge stage: one exact-KS budget per merge step', () => {
  it('a group evaluated after the step spent the budget gets the asymptotic KS p, though alone it would get the exact one', async () => {
    const referenceSize = 10_000; // the largest sample with an exact p (KS_MAX_AUTO_N)
    const wide = buildNumericProfile(Array.from({ length: referenceSize }, (_, i) => i / referenceSize));
    // Shifted by 0.1 on 1,000 events: an exact p alone (within KS_EXACT_P_BUDGET), ~2e6 lattice cells.
    const current = Array.from({ length: 1000 }, (_, i) => 0.1 + i / 1000);
    const summary = new NumericSummary(wide);
    for (const v of current) summary.add(v);
    const d = ksFromSummary(wide, summary).statistic;
    const alone = ksPValue(d, referenceSize, current.length);
    expect(alone.method).toBe('exact');
    const asymptotic = ksAsymptoticPValue(d, referenceSize, current.length);
    expect(asymptotic).not.toBe(alone.pValue);
    // Model m has one feature more than a step's budget pays exact p-values for; model n (evaluated
    // after m: groups go in model order) has one feature, which a budget of its own would pay for.
    const fits = Math.floor(KS_EXACT_P_WINDOW_BUDGET / ksExactCells(d, referenceSize, current.length));
    const features = Array.from({ length: fits + 1 }, (_, k) => `f${String(k).padStart(3, '0')}`);
    const sets = [
      referenceSet('m', 'v1', new Map(features.map((f) => [f, wide]))),
      referenceSet('n', 'v1', new Map([[features[0]!, wide]])),
    ];
    const wideStore: ReferenceStore = {
      save: async () => {},
      latest: async (model) => sets.find((r) => r.model === model),
      byId: async (id) => sets.find((r) => r.referenceId === id),
      newest: async () => sets,
      catalog: async () => sets.map((r) => ({ model: r.model, version: r.version, referenceId: r.referenceId })),
    };
    const event = (set: ReferenceSet, i: number, eventTime: number, x: number): PredictionEvent => ({
      prediction_id: `${set.model}${i}`,
      model: set.model,
      model_version: 'v1',
      entity_id: 'e',
      event_time: eventTime,
      features: Object.fromEntries(set.features.map((f) => [f, x])),
      prediction: 0,
      predicted_class: null,
    });
    const events = [
      ...sets.flatMap((set) => current.map((x, i) => event(set, i, W0 + (i % 1000), x))),
      ...sets.map((set) => event(set, current.length, W0 + 1100, 0)), // closes W0
    ];
    const { consume, rows } = setup({ references: new ReferenceCache(wideStore) });
    expect(await consume(await stageOnePartials(wideStore, events))).toEqual([]);

    const ks = rows.filter((r) => r.method === 'ks'); // in the order the step evaluated them
    expect(ks.map((r) => [r.model, r.statistic, r.reference_size, r.current_size])).toEqual([
      ...features.map(() => ['m', d, referenceSize, current.length]),
      ['n', d, referenceSize, current.length],
    ]);
    // Exact while the step's one budget lasts, then asymptotic: m's last feature and n's only one.
    expect(ks.map((r) => r.p_value)).toEqual(ks.map((_, k) => (k < fits ? alone.pValue : asymptotic)));
  });
});

describe('merge stage: a turn of the event loop between groups', () => {
  /** Notes, at each group's reference look-up, whether a setImmediate queued at the previous one has run. */
  class TurnRecordingCache extends ReferenceCache {
    readonly turnedSincePrevious: boolean[] = [];
    private previous: { ran: boolean } | undefined;
    override byReferenceId(id: string): Promise<ReferenceSet | undefined> {
      if (this.previous !== undefined) this.turnedSincePrevious.push(this.previous.ran);
      const queued = { ran: false };
      setImmediate(() => {
        queued.ran = true;
      });
      this.previous = queued;
      return super.byReferenceId(id);
    }
  }

  it('gives the event loop a turn before each group after the first (references come from a cache, as microtasks)', async () => {
    const references = new TurnRecordingCache(store);
    const { consume, rows } = setup({ references });
    // Closes W0 and W0+1000 in one step: four groups (two windows of models m and n).
    expect(await consume(await partialsFor([W0 + 100, W0 + 1100, W0 + 2100]))).toEqual([]);
    expect(windowsOf(rows)).toHaveLength(4);
    expect(references.turnedSincePrevious).toEqual([true, true, true]);
  });
});

describe('merge stage: a source declared idle', () => {
  it('completes the window without it, then counts the events of its late partial as excluded', async () => {
    const two = { partitions: 2 };
    const first = await partialsFor([W0 + 100, W0 + 200, W0 + 1100], { partition: 0, ...two }); // closes W0
    const stalled = await partialsFor([W0 + 300, W0 + 1300], { partition: 1, ...two }); // closes W0, later
    let clock = NOW;
    const metrics = driftMetrics(createMetricsRegistry({ service: 'drift-monitor', defaultMetrics: false }));
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (_obj, msg) => void warnings.push(msg ?? ''), child: () => logger };
    const { consume, rows } = setup({ clock: () => clock, metrics, logger });
    expect(await consume(first)).toEqual([]);
    expect(rows).toEqual([]); // source 1 has not reported W0
    // Source 0 keeps reporting (closes W0+1000, then W0+2000) while source 1 stays silent for longer
    // than the idle timeout (60 s): source 1 is idle for W0.
    clock += 30_000;
    const later = await partialsFor([W0 + 100, W0 + 1100, W0 + 2100, W0 + 3100], { partition: 0, ...two });
    expect(await consume(later.filter((m) => m.windowStart === W0 + 1000))).toEqual([]);
    expect(rows).toEqual([]);
    clock += 31_000;
    expect(await consume(later.filter((m) => m.windowStart === W0 + 2000))).toEqual([]);
    // Only source 0's events (two per model) are in W0's rows.
    const w0 = rows.filter((r) => r.window_start === chTime(W0));
    expect([...new Set(w0.map((r) => `${r.model}:${r.events}:${r.idle_partitions}`))].sort()).toEqual([
      'm:2:1',
      'n:2:1',
    ]);
    expect((await metrics.eventsExcluded.get()).values[0]?.value ?? 0).toBe(0);
    expect(await consume(stalled)).toEqual([]); // arrives after the window completed without it
    expect((await metrics.eventsExcluded.get()).values[0]?.value).toBe(2); // one event each of m and n
    expect(warnings).toHaveLength(2);
    expect(warnings.every((w) => w.includes('without its source, idle for DRIFTLINE_DRIFT_IDLE_TIMEOUT'))).toBe(true);
  });
});

describe('merge stage: a source the window did not expect', () => {
  it('says so when a partial of a partition added after the window completed arrives, instead of blaming idleness', async () => {
    // Sources 0 and 1 close W0 naming 2 partitions; the topic then grows and source 2 closes W0 too.
    const before = await Promise.all(
      [0, 1].map((partition) => partialsFor([W0 + 100, W0 + 1100], { partition, partitions: 2 })),
    );
    const added = await partialsFor([W0 + 200, W0 + 1100], { partition: 2, partitions: 3 });
    const warnings: Array<[object, string]> = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (obj, msg) => void warnings.push([obj, msg ?? '']),
      child: () => logger,
    };
    const { consume, rows } = setup({ logger }); // the clock stands still: nothing is idle
    expect(await consume(before.flat())).toEqual([]);
    expect(rows.some((r) => r.window_start === chTime(W0))).toBe(true); // completed with sources 0 and 1
    expect(await consume(added.filter((m) => m.windowStart === W0))).toEqual([]);
    const late = warnings.filter(([obj]) => (obj as { source?: number }).source === 2);
    expect(late).toHaveLength(2); // models m and n
    for (const [obj, msg] of late) {
      expect(msg).toMatch(/did not expect when it completed \(2 source partitions then/);
      expect(msg).not.toMatch(/idle/);
      expect(obj).toMatchObject({ sourcePartitions: 3, completedWith: 2 });
    }
  });
});

describe('merge stage: a reference re-stored while instances refreshed at different times', () => {
  // Partition 0's instance still holds R1, partition 1's already R2 (each catalog refreshes on its own).
  const r1 = referenceSet('s', 'v1', new Map([['x', profile]]));
  const r2 = referenceSet(
    's',
    'v1',
    new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i + 0.5))]]),
  );
  const storeWith = (ref: ReferenceSet): ReferenceStore => ({
    save: async () => {},
    latest: async () => ref,
    byId: async (id) => [r1, r2].find((r) => r.referenceId === id),
    newest: async () => [ref],
    catalog: async () => [{ model: ref.model, version: ref.version, referenceId: ref.referenceId }],
  });
  const expectations = expectationSet([
    {
      feature: 'x',
      type: 'double',
      maxTypeMismatch: 0,
      maxNullRate: 0.2,
      range: { min: 0, max: 100, maxShareOutside: 1 },
    },
  ]);

  /** The real stage one of one source partition (of two) whose windows open on `ref`: W0 gets these x values. */
  async function sourceOn(ref: ReferenceSet, partition: number, xs: ReadonlyArray<number | null>) {
    const references = new ReferenceCache(storeWith(ref));
    return stageOnePartialsOfW0({ references, expectations, partition, sourcePartitions: 2, xs, w0: W0, now: NOW });
  }

  /** `unreadable`: a reference id the merge's store cannot read (ConfigError, as a profile of another format). */
  function merge(unreadable?: string) {
    const rows: DriftWindowRow[] = [];
    const quality: DataQualityRow[] = [];
    const alerts: DriftAlert[] = [];
    const quarantined: DriftQuarantineRow[] = [];
    const warnings: Array<[object, string | undefined]> = [];
    const base = storeWith(r2);
    const store: ReferenceStore = {
      ...base,
      byId: async (id) => {
        if (id === unreadable) throw new ConfigError('reference_profiles[s/v1/x].profile.format', 'unknown');
        return base.byId(id);
      },
    };
    const logger: Logger = { ...silentLogger, warn: (obj, msg) => void warnings.push([obj, msg]), child: () => logger };
    const metrics = driftMetrics(createMetricsRegistry({ service: 'drift-monitor', defaultMetrics: false }));
    const processor = mergeProcessor({
      driftWindows: {
        insert: async (batch) => void rows.push(...batch),
        writtenReferences: async (model, version, windowStart, windowEnd) =>
          writtenReferences(rows, model, version, windowStart, windowEnd),
      },
      quarantine: { insert: async (batch) => void quarantined.push(...batch) },
      references: new ReferenceCache(store),
      progress: memoryProgress(),
      group: 'g-merge',
      idleTimeoutMs: 60_000,
      windowMs: 1000,
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      thresholds: DEFAULT_THRESHOLDS,
      primary: 'psi',
      alertShare: 0.5,
      alertMinEvents: 1,
      logger,
      metrics,
      now: () => NOW,
      sendAlerts: async (batch) => void alerts.push(...batch),
      quality: { expectations, store: { insert: async (batch) => void quality.push(...batch) } },
    });
    const consume = (messages: readonly PartialsMessage[]) =>
      processor.process(
        messages.map((value, i) => ({
          record: { topic: 'dp', partition: 0, offset: String(i), key: null, value: null, headers: {}, timestamp: 0 },
          value,
        })),
        { topic: 'dp', partition: 0, highWatermark: '0' },
      );
    return { consume, rows, quality, alerts, quarantined, warnings, metrics };
  }

  it('writes one drift answer on one reference, chosen the same in any order, and quality over every event', async () => {
    const onR1 = await sourceOn(r1, 0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]); // 12 events, no null
    const onR2 = await sourceOn(r2, 1, [90, null, null, null, 95, 96, 97, 98]); // 8 events, 3 null
    const runs = [];
    for (const order of [
      [...onR1, ...onR2],
      [...onR2, ...onR1],
    ]) {
      const run = merge();
      await run.consume(order);
      runs.push(run);
    }
    for (const { rows, quality, alerts, warnings, metrics } of runs) {
      // One row per (feature, method), on the part with the most events (R1), with its own events.
      const psi = rows.filter((r) => r.feature === 'x' && r.method === 'psi');
      expect(psi.map((r) => [r.reference_id, r.events, r.current_size])).toEqual([[r1.referenceId, 12, 12]]);
      expect(new Set(rows.map((r) => r.reference_id))).toEqual(new Set([r1.referenceId]));
      expect(rows.length).toBe(new Set(rows.map((r) => `${r.feature}/${r.method}`)).size);
      // Quality over all 20 events: one row per expectation, 3 nulls in 20.
      const nullRate = quality.filter((r) => r.expectation === 'null_rate');
      expect(nullRate.map((r) => [r.observed, r.count, r.events])).toEqual([[3 / 20, 20, 20]]);
      expect(quality.length).toBe(new Set(quality.map((r) => `${r.feature}/${r.expectation}`)).size);
      expect(alerts.filter((a) => a.kind === 'DATA_QUALITY')).toHaveLength(0); // 0.15 ≤ 0.2; 3 of 8 would fail
      expect(new Set(alerts.map((a) => a.alert_id)).size).toBe(alerts.length);
      // The split is visible: a counter and one log line naming the window and both references.
      expect((await metrics.referenceSplits.get()).values[0]?.value).toBe(1);
      const split = warnings.filter(([, msg]) => msg?.includes('different references'));
      expect(split.map(([obj]) => obj)).toEqual([
        {
          model: 's',
          version: 'v1',
          windowStart: W0,
          windowEnd: W0 + 1000,
          measured: { referenceId: r1.referenceId, events: 12 },
          setAside: [{ referenceId: r2.referenceId, events: 8 }],
        },
      ]);
    }
    expect(runs[1]!.rows).toEqual(runs[0]!.rows);
    expect(runs[1]!.quality).toEqual(runs[0]!.quality);
  });

  it('measures the window when the set-aside part’s reference cannot be read: that part is left out of the missing-share check, with a warning naming it', async () => {
    const onR1 = await sourceOn(r1, 0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]); // measured: 12 events
    const onR2 = await sourceOn(r2, 1, [90, null, null, null, 95, 96, 97, 98]); // set aside: 8 events
    const run = merge(r2.referenceId);
    await run.consume([...onR1, ...onR2]); // resolves: nothing thrown
    expect(run.quarantined).toEqual([]);
    expect(new Set(run.rows.map((r) => `${r.reference_id}:${r.events}`))).toEqual(new Set([`${r1.referenceId}:12`]));
    const left = run.warnings.filter(([, msg]) => msg?.includes('cannot be read'));
    expect(left.map(([obj]) => obj)).toEqual([
      expect.objectContaining({
        model: 's',
        version: 'v1',
        windowStart: W0,
        referenceId: r2.referenceId,
        events: 8,
        code: 'CONFIG_INVALID',
      }),
    ]);
  });

  it('quarantines the window when the measured part’s reference cannot be read (CONFIG_INVALID), never throws', async () => {
    const onR1 = await sourceOn(r1, 0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const onR2 = await sourceOn(r2, 1, [90, null, null, null, 95, 96, 97, 98]);
    const run = merge(r1.referenceId);
    await run.consume([...onR1, ...onR2]);
    expect(run.rows).toEqual([]);
    expect(run.quarantined.map((r) => [r.model, r.reference_id, r.window_start, r.code])).toEqual([
      ['s', r1.referenceId, chTime(W0), 'CONFIG_INVALID'],
    ]);
    expect(run.alerts.map((a) => a.kind)).toEqual(['DRIFT_WINDOW_QUARANTINED']);
  });

  it('says nothing of a window on one reference', async () => {
    const run = merge();
    await run.consume([...(await sourceOn(r2, 0, [1, 2])), ...(await sourceOn(r2, 1, [3, null]))]);
    expect(new Set(run.rows.map((r) => `${r.reference_id}:${r.events}`))).toEqual(new Set([`${r2.referenceId}:4`]));
    expect(run.quality.find((r) => r.expectation === 'null_rate')).toMatchObject({ observed: 1 / 4, events: 4 });
    expect((await run.metrics.referenceSplits.get()).values[0]?.value ?? 0).toBe(0);
    expect(run.warnings).toEqual([]);
  });
});

describe('merge stage: a window dropped as a stale fragment is said', () => {
  it('one lost partial of source 1 drops window W0 for every model, with a warning naming what it waited for', async () => {
    const times = [W0 + 100, W0 + 200, W0 + 1100, W0 + 1200, W0 + 2100]; // closes W0 and W0 + 1000
    const s0 = await partialsFor(times, { partition: 0, partitions: 2 });
    const s1 = await partialsFor(times, { partition: 1, partitions: 2 });
    const lost = (m: PartialsMessage) => m.type === 'partial' && m.windowStart === W0 && m.model === 'm';
    const { logger, lines } = warnings();
    const { consume, rows } = setup({ logger });
    expect(await consume([...s0, ...s1.filter((m) => !lost(m))])).toEqual([]);
    // The window after it is written; W0 is not, for either model (what the chaos run saw).
    expect(windowsOf(rows)).toEqual([`m@${chTime(W0 + 1000)}`, `n@${chTime(W0 + 1000)}`]);
    const said = lines.filter((l) => l.msg?.startsWith('drift window dropped as a stale fragment') === true);
    expect(said.map((l) => l.obj)).toEqual([
      {
        topic: 'drift.partials.v1',
        partition: 0,
        windowStart: W0,
        completedLater: W0 + 1000,
        unreportedSources: [],
        missingPartials: [{ source: 1, model: 'm', version: 'v1' }],
      },
    ]);
  });
});
