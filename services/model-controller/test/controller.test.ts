import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseEnv, silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import {
  operatorTransitions,
  type PairInput,
  parseRolloutPolicy,
  parseRolloutPolicyText,
  viewOf,
} from '@driftline/policy';
import type { ModelEvent } from '@driftline/schemas';
import { SeededRandom } from '@driftline/test-support/random';
import type { ModelTransitionStore, TransitionRow } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { modelControllerEnvShape, toModelControllerConfig } from '../src/config.js';
import { ModelController, type PairReader } from '../src/controller.js';
import type { Ownership } from '../src/ownership.js';
import { batch, labelledTable, MemoryTransitions, transitionRow } from './memory-warehouse.js';

const T0 = Date.UTC(2026, 0, 1);

/** The answered read, where no test expects it (only a rollback watch at max_time with no pair asks). */
const notAsked = async (): Promise<boolean> => {
  throw new Error('answeredSince asked');
};

/** Pairs per (incumbent, challenger): `quality` per version; seeded, one label a second from `since`. */
function pairsFor(quality: Record<string, number>, n = 600): PairReader {
  return {
    answeredSince: notAsked,
    async labelClock() {
      return undefined;
    },
    async readPairs(q) {
      const r = new SeededRandom(q.from % 1_000_003);
      const score = (label: number, v: string) =>
        Math.min(1, Math.max(0, 0.5 + (label === 1 ? 0.45 : -0.45) * (quality[v] ?? 0.5) + (r.uniform() - 0.5) * 0.3));
      const out: Array<PairInput & { predictionId: string; joinedAt: number }> = [];
      for (let i = 0; i < Math.min(n, q.limit); i++) {
        const label = r.uniform() < 0.4 ? 1 : 0;
        out.push({
          predictionId: `p${i}`,
          predictionTime: q.from + i * 1000,
          labelTime: q.from + (i + 1) * 1000,
          joinedAt: q.from + (i + 1) * 1000,
          label,
          incumbent: score(label, q.incumbent),
          challenger: score(label, q.challenger),
        });
      }
      return { pairs: out, unusable: { labelNotBinary: 0, scoreNotProbability: 0 } };
    },
  };
}

// Pairs as they arrived (arrival_bucket: 0): these tests are about other rules; the closed arrival
// buckets of the default have their own tests (arrival-buckets.test.ts).
const policies = parseRolloutPolicy({
  defaults: { promotion: { min_labels: 50 }, rollback: { min_labels: 50 }, canary_share: 0.2, arrival_bucket: 0 },
});

const row = transitionRow;

function setup(quality: Record<string, number>) {
  const log: string[] = [];
  const store = new MemoryTransitions(log);
  store.rows.set('fraud/v2/candidate', row('v2', null, 'candidate', T0));
  store.rows.set('fraud/v2/shadow', row('v2', 'candidate', 'shadow', T0, 'v1'));
  const published: ModelEvent[] = [];
  let failPublish = false;
  const deps = {
    transitions: store,
    pairs: pairsFor(quality),
    publish: async (events: readonly ModelEvent[]) => {
      if (failPublish) throw new Error('kafka down');
      published.push(...events);
      log.push(...events.map((e) => `publish ${e.version}:${e.kind}`));
    },
    policies,
    maxPairs: 100_000,
    logger: silentLogger,
    registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    now: () => T0 + 86_400_000,
  };
  return { log, store, published, deps, setFailPublish: (v: boolean) => (failPublish = v) };
}

describe('ModelController', () => {
  it('a tick that cannot list the models (warehouse down) fails and counts as failed', async () => {
    const { store, deps } = setup({ v1: 0.2, v2: 0.8 });
    const controller = new ModelController(deps);
    store.failing = true;
    await expect(controller.tick()).rejects.toThrow('clickhouse down');
    store.failing = false;
    await controller.tick();
    const ticks = await deps.registry.getSingleMetricAsString('driftline_model_controller_ticks_total');
    expect(ticks).toMatch(/outcome="failed"[^}]*\} 1$/m);
    expect(ticks).toMatch(/outcome="ok"[^}]*\} 1$/m);
  });

  it('re-publishes the newest transition of every version on start, records before it publishes, then walks a better candidate to production', async () => {
    const { log, store, published, deps } = setup({ v1: 0.2, v2: 0.8 });
    const controller = new ModelController(deps);
    const first = await controller.tick();
    expect(first.republished).toBe(1);
    expect(log.slice(0, 3)).toEqual(['publish v2:SHADOW', 'record v2:canary', 'publish v2:CANARY']);
    expect(published[1]).toMatchObject({
      kind: 'CANARY',
      canary_share: 0.2,
      previous_version: null,
      decided_by: 'policy:promotion',
      artifact_uri: 'file:///m/v2/model.json',
      request_id: 'req-v2',
    });
    expect(JSON.parse(published[1]!.evidence!)).toMatchObject({ test: 'prpl_eb_confidence_sequence' });
    expect(published[1]!.reason).toMatch(/^evidence: lower bound .* > bar 0 after \d+ labels/);
    // Production next (v1 replaced), then the watch keeps v2: v1 retired.
    await controller.tick();
    await controller.tick();
    expect(published.slice(2).map((e) => `${e.version}:${e.kind}:${e.previous_version ?? ''}`)).toEqual([
      'v2:PROMOTED:v1',
      'v1:RETIRED:',
    ]);
    expect(store.rows.get('fraud/v1/retired')).toMatchObject({
      from_stage: 'production',
      decided_by: 'policy:rollback',
      reason: 'evidence',
    });
    // Nothing open any more, nothing to re-publish.
    expect(await controller.tick()).toMatchObject({ transitions: [], republished: 0 });
    // A new process: re-publishes the newest of each version once, decides nothing new.
    const again = setup({});
    for (const [k, v] of store.rows) again.store.rows.set(k, v);
    const restarted = new ModelController(again.deps);
    expect((await restarted.tick()).republished).toBe(2);
    expect(again.published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:PROMOTED', 'v1:RETIRED']);
    expect((await restarted.tick()).republished).toBe(0);
  });

  it("removes a comparison's gauges once it is closed, keeps those of the open ones", async () => {
    const { deps } = setup({ v1: 0.2, v2: 0.8 });
    const controller = new ModelController(deps);
    const series = async (name: string) =>
      ((await deps.registry.getSingleMetric(name)?.get())?.values ?? []).map(
        (v) => `${v.labels.version}:${v.labels.kind}${v.labels.bound === undefined ? '' : `:${v.labels.bound}`}`,
      );
    await controller.tick(); // shadow v2 → canary: its comparison is open until production
    expect(await series('driftline_model_controller_comparison_labels')).toEqual(['v2:promotion']);
    expect(await series('driftline_model_controller_comparison_estimate')).toHaveLength(3);
    await controller.tick(); // canary v2 → production: the rollback watch opens
    await controller.tick(); // the watch keeps v2: v1 retired, nothing open
    await controller.tick();
    expect(await series('driftline_model_controller_comparison_labels')).toEqual([]);
    expect(await series('driftline_model_controller_comparison_estimate')).toEqual([]);
  });

  it('rejects a worse shadow', async () => {
    const { published, deps } = setup({ v1: 0.8, v2: 0.2 });
    await new ModelController(deps).tick();
    expect(published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:SHADOW', 'v2:REJECTED']);
  });

  it('rolls back a production version worse than the one it replaced', async () => {
    const { store, published, deps } = setup({ v1: 0.8, v2: 0.2 });
    store.rows.set('fraud/v2/canary', row('v2', 'shadow', 'canary', T0 + 1000, 'v1'));
    store.rows.set('fraud/v2/production', row('v2', 'canary', 'production', T0 + 2000, 'v1'));
    await new ModelController(deps).tick();
    expect(published.at(-1)).toMatchObject({
      version: 'v2',
      kind: 'ROLLED_BACK',
      previous_version: 'v1',
      decided_by: 'policy:rollback',
    });
    expect(store.rows.get('fraud/v2/rolled_back')?.previous_version).toBe('v1');
  });

  it('a label or prediction time beyond the allowed future (µs read as ms) is left out: it ends no comparison on max_time', async () => {
    const { published, deps } = setup({ v1: 0.5, v2: 0.5 });
    const few = pairsFor({ v1: 0.5, v2: 0.5 }, 4);
    const micros = (T0 + 60_000) * 1000;
    const controller = new ModelController({
      ...deps,
      pairs: {
        answeredSince: notAsked,
        labelClock: async () => ({ labelTime: micros, predictionTime: T0 + 1_000 }),
        readPairs: async (q) => {
          const read = await few.readPairs(q);
          return {
            ...read,
            pairs: [
              ...read.pairs,
              {
                predictionId: 'us',
                predictionTime: T0,
                labelTime: micros,
                joinedAt: T0,
                label: 1,
                incumbent: 0.5,
                challenger: 0.5,
              },
              {
                predictionId: 'us2',
                predictionTime: micros,
                labelTime: T0,
                joinedAt: T0,
                label: 1,
                incumbent: 0.5,
                challenger: 0.5,
              },
            ],
          };
        },
      },
    });
    const tick = await controller.tick();
    expect(tick.failed).toBe(0);
    expect(published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:SHADOW']);
    // The same rows within the bound do end it: max_time is reached on a plausible clock.
    const later = T0 + 60 * 86_400_000;
    const ended = new ModelController({
      ...deps,
      now: () => later,
      pairs: {
        answeredSince: notAsked,
        labelClock: async () => ({ labelTime: later, predictionTime: later - 1_000 }),
        readPairs: (q) => few.readPairs(q),
      },
    });
    await ended.tick();
    expect(published.at(-1)).toMatchObject({ version: 'v2', kind: 'REJECTED' });
  });

  it('one label row dated in 2099 leaves the clock at the newest plausible label, so max_time still ends a comparison', async () => {
    const { published, deps } = setup({ v1: 0.5, v2: 0.5 });
    const few = pairsFor({ v1: 0.5, v2: 0.5 }, 4);
    const later = T0 + 60 * 86_400_000;
    const rows = [
      { labelTime: later, predictionTime: later - 1_000 },
      { labelTime: Date.UTC(2099, 0, 1), predictionTime: Date.UTC(2099, 0, 1) - 1_000 },
    ]; // as the table holds them
    const controller = new ModelController({
      ...deps,
      now: () => later,
      pairs: {
        answeredSince: notAsked,
        // As the warehouse reads it: the newest times of rows with both at or before the bound.
        labelClock: async (_model: string, _now: number, notAfter: number) => {
          const within = rows.filter((r) => r.labelTime <= notAfter && r.predictionTime <= notAfter);
          return {
            labelTime: Math.max(...within.map((r) => r.labelTime)),
            predictionTime: Math.max(...within.map((r) => r.predictionTime)),
          };
        },
        readPairs: (q) => few.readPairs(q),
      },
    });
    await controller.tick();
    expect(published.at(-1)).toMatchObject({ version: 'v2', kind: 'REJECTED' });
  });

  it('a recorded transition whose `at` is not epoch ms is left out, not a failure of every tick', async () => {
    const { store, published, deps } = setup({ v1: 0.2, v2: 0.8 });
    store.rows.set('fraud/v9/candidate', row('v9', null, 'candidate', Number.NaN));
    store.rows.set('fraud/v8/candidate', row('v8', null, 'candidate', 1.5));
    const tick = await new ModelController(deps).tick();
    expect(tick.failed).toBe(0);
    expect(published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:SHADOW', 'v2:CANARY']);
  });

  it('a recorded transition to a stage that is none of ours is left out, not a failure of every tick', async () => {
    const { store, published, deps } = setup({ v1: 0.2, v2: 0.8 });
    // Written by hand: no models.v1 kind exists for it, so publishing it failed the model's every tick.
    store.rows.set('fraud/v7/staging', row('v7', null, 'staging' as TransitionRow['to_stage'], 1_000));
    store.rows.set('fraud/v6/production', row('v6', 'Canary' as TransitionRow['from_stage'], 'production', 1_000));
    const tick = await new ModelController(deps).tick();
    expect(tick.failed).toBe(0);
    expect(published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:SHADOW', 'v2:CANARY']);
  });

  it('a publish that fails after the record is re-published on the next tick; a ClickHouse outage decides nothing', async () => {
    const { log, store, published, deps, setFailPublish } = setup({ v1: 0.2, v2: 0.8 });
    const controller = new ModelController(deps);
    setFailPublish(true);
    expect(await controller.tick()).toMatchObject({ failed: 1, transitions: [] });
    setFailPublish(false);
    // The start-up re-publish failed too: this tick publishes v2's newest transition (shadow → canary, recorded? no:
    // the failed tick stopped at its first publish, before deciding).
    await controller.tick();
    expect(published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:SHADOW', 'v2:CANARY']);
    // Record succeeded, publish failed: the next tick sends the recorded transition and decides nothing twice.
    setFailPublish(true);
    await controller.tick(); // records v2 → production, its publish fails
    expect(log.at(-1)).toBe('record v2:production');
    setFailPublish(false);
    await controller.tick();
    expect(published.slice(2).map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:PROMOTED', 'v1:RETIRED']);
    store.failing = true;
    await expect(controller.tick()).rejects.toThrow(/clickhouse down/);
  });
});

describe('a rollback watch whose time is up with no pair (found by reviews)', () => {
  const week = 7 * 86_400_000;
  const since = T0 + 2000; // v2 promoted, replacing v1
  const later = since + week + 60_000;
  /** A labelled row as the warehouse holds it: the version that answered, and `scores` (null: none sent). */
  interface Row {
    readonly answered: string;
    readonly predictionTime: number;
    readonly scores: Readonly<Record<string, number>> | null;
  }
  /** Labelled rows over the week after the promotion, each answered by `answered` with `scores`. */
  const week_of = (answered: string, scores: Row['scores']): Row[] =>
    Array.from({ length: 8 }, (_, i) => ({ answered, predictionTime: since + i * 86_400_000 + 1000, scores }));
  /**
   * The warehouse's reads over `rows`, as its queries define them: pairs need the plan's answering
   * version (all rows here answered as production) and both versions in `scores`, both in [0, 1];
   * answeredSince reads model_version only. `down`: the answered read fails.
   */
  function warehouse(rows: readonly Row[], down = false) {
    const asked: string[] = [];
    const reader: PairReader = {
      labelClock: async () => ({
        labelTime: Math.max(...rows.map((r) => r.predictionTime)) + 1000,
        predictionTime: Math.max(...rows.map((r) => r.predictionTime)),
      }),
      readPairs: async (q) => {
        const both = rows.filter(
          (r) =>
            r.answered === q.answeredBy.version &&
            r.predictionTime >= q.from &&
            r.scores?.[q.incumbent] !== undefined &&
            r.scores[q.challenger] !== undefined,
        );
        const unit = (x: number | undefined) => x !== undefined && x >= 0 && x <= 1;
        const usable = both.filter((r) => unit(r.scores?.[q.incumbent]) && unit(r.scores?.[q.challenger]));
        return {
          pairs: usable.slice(0, q.limit).map((r, i) => ({
            predictionId: `p${i}`,
            predictionTime: r.predictionTime,
            labelTime: r.predictionTime + 1000,
            joinedAt: r.predictionTime + 1000,
            label: i % 2,
            incumbent: r.scores![q.incumbent]!,
            challenger: r.scores![q.challenger]!,
          })),
          unusable: { labelNotBinary: 0, scoreNotProbability: both.length - usable.length },
        };
      },
      answeredSince: async (model, version, from) => {
        asked.push(`${model}/${version}/${from}`);
        if (down) throw new Error('clickhouse down');
        return rows.some((r) => r.answered === version && r.predictionTime >= from);
      },
    };
    return { reader, asked };
  }
  function promotedV2(rows: readonly Row[], down = false) {
    const { store, published, deps } = setup({});
    store.rows.set('fraud/v2/canary', row('v2', 'shadow', 'canary', T0 + 1000, 'v1'));
    store.rows.set('fraud/v2/production', row('v2', 'canary', 'production', since, 'v1'));
    const w = warehouse(rows, down);
    const controller = new ModelController({ ...deps, now: () => later, pairs: w.reader });
    return { controller, store, published, asked: w.asked, deps };
  }

  it('a production that answered, its rows without a scores map (SDK, outside producers, before 0520), is kept: the replaced version retired', async () => {
    const { controller, store, published, asked } = promotedV2(week_of('v2', null));
    const tick = await controller.tick();
    expect(tick.failed).toBe(0);
    expect(published.at(-1)).toMatchObject({ version: 'v1', kind: 'RETIRED', decided_by: 'policy:rollback' });
    expect(published.at(-1)!.reason).toMatch(/^too_few_labels: .*v2 \(production\) answered predictions since/);
    expect(JSON.parse(published.at(-1)!.evidence!)).toMatchObject({ n: 0, production_answered: true });
    expect(published.map((e) => `${e.version}:${e.kind}`)).not.toContain('v2:ROLLED_BACK');
    expect(store.rows.get('fraud/v1/retired')?.previous_version).toBe('v2');
    // One read, of production since the watch began (not of the replaced version).
    expect(asked).toEqual([`fraud/v2/${since}`]);
  });

  it('a margin-score production (scored rows, never a usable pair) that answers is kept, not rolled back', async () => {
    const { controller, published } = promotedV2(week_of('v2', { v2: 2.3, v1: -0.8 }));
    await controller.tick();
    expect(published.at(-1)).toMatchObject({ version: 'v1', kind: 'RETIRED' });
    expect(JSON.parse(published.at(-1)!.evidence!)).toMatchObject({ n: 0, production_answered: true });
  });

  it('a production that never answered (the servers gave it up and serve v1) is rolled back to v1, v1 not retired', async () => {
    const { controller, store, published } = promotedV2(week_of('v1', { v1: 0.4 }));
    const tick = await controller.tick();
    expect(tick.failed).toBe(0);
    expect(published.at(-1)).toMatchObject({
      version: 'v2',
      kind: 'ROLLED_BACK',
      previous_version: 'v1',
      decided_by: 'policy:rollback',
    });
    expect(published.at(-1)!.reason).toMatch(/^not_scored: .*v2 \(production\) answered no prediction since/);
    expect(JSON.parse(published.at(-1)!.evidence!)).toMatchObject({ n: 0, production_answered: false });
    expect(store.rows.has('fraud/v1/retired')).toBe(false);
  });

  it('the answered read unavailable (ClickHouse down): no decision this tick, decided on the next', async () => {
    const rows = week_of('v2', null);
    const { controller, store, published, deps } = promotedV2(rows, true);
    const tick = await controller.tick();
    expect(tick.failed).toBe(0); // the watch waits; the model's other comparisons are not held
    expect(tick.transitions).toEqual([]);
    expect(published.map((e) => e.kind)).not.toContain('RETIRED');
    expect(published.map((e) => e.kind)).not.toContain('ROLLED_BACK');
    expect([...store.rows.keys()].filter((k) => k.endsWith('/retired') || k.endsWith('/rolled_back'))).toEqual([]);
    const back = new ModelController({ ...deps, now: () => later, pairs: warehouse(rows).reader });
    await back.tick();
    expect(published.at(-1)).toMatchObject({ version: 'v1', kind: 'RETIRED' });
  });

  it('the answered read failing holds only the watch waiting on it: a worse canary is still rolled back (found by a review)', async () => {
    const since = T0 + 2000;
    const later = since + 8 * 86_400_000;
    const log: string[] = [];
    const store = new MemoryTransitions(log);
    const at = (
      version: string,
      from: TransitionRow['from_stage'] | null,
      to: string,
      time: number,
      previous: string | null,
    ) =>
      store.rows.set(`fraud/${version}/${to}`, {
        model: 'fraud',
        version,
        from_stage: from,
        to_stage: to,
        at: time,
        decided_by: 'test',
        reason: 'test',
        detail: '',
        evidence: '',
        canary_share: null,
        previous_version: previous,
        recorded_at: time,
      } as TransitionRow);
    at('v2', null, 'candidate', T0, null);
    at('v2', 'candidate', 'shadow', T0, 'v1');
    at('v2', 'shadow', 'canary', T0 + 1000, 'v1');
    at('v2', 'canary', 'production', since, 'v1');
    at('v3', null, 'candidate', T0 + 3000, null);
    at('v3', 'candidate', 'shadow', T0 + 3000, 'v2');
    at('v3', 'shadow', 'canary', T0 + 4000, 'v2');
    const published: string[] = [];
    const pairs: PairReader = {
      labelClock: async () => ({ labelTime: later, predictionTime: later - 1000 }),
      readPairs: async (q) => {
        if (q.incumbent !== 'v2' || q.challenger !== 'v3') {
          return { pairs: [], unusable: { labelNotBinary: 0, scoreNotProbability: 300 } }; // margins: no pair
        }
        // The canary v3 much worse than production v2 on 300 labelled requests.
        const worse: Array<PairInput & { predictionId: string; joinedAt: number }> = Array.from(
          { length: 300 },
          (_, i) => ({
            predictionId: `c${i}`,
            predictionTime: T0 + 5000 + i * 1000,
            labelTime: T0 + 6000 + i * 1000,
            joinedAt: T0 + 6000 + i * 1000,
            label: i % 2,
            incumbent: i % 2 ? 0.9 : 0.1,
            challenger: i % 2 ? 0.1 : 0.9,
          }),
        );
        return { pairs: worse, unusable: { labelNotBinary: 0, scoreNotProbability: 0 } };
      },
      answeredSince: async () => {
        throw new Error('Code: 497. DB::Exception: Not enough privileges (SELECT ON driftline.unlabeled_predictions)');
      },
    };
    const controller = new ModelController({
      transitions: store,
      pairs,
      publish: async (events) => {
        published.push(...events.map((e) => `${e.version}:${e.kind}`));
      },
      policies: parseRolloutPolicy({ defaults: { promotion: { min_labels: 50 }, rollback: { min_labels: 50 } } }),
      maxPairs: 100_000,
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      now: () => later,
    });
    const tick = await controller.tick();
    expect(tick.failed).toBe(0);
    expect(tick.transitions.map((t) => `${t.version}:${t.from_stage}>${t.to_stage}`)).toEqual([
      'v3:canary>rolled_back',
    ]);
    expect(published).toContain('v3:ROLLED_BACK');
    expect(published).not.toContain('v1:RETIRED');
  });

  it('before max_time, or with pairs, production is not asked about', async () => {
    const early = setup({});
    early.store.rows.set('fraud/v2/canary', row('v2', 'shadow', 'canary', T0 + 1000, 'v1'));
    early.store.rows.set('fraud/v2/production', row('v2', 'canary', 'production', since, 'v1'));
    const w = warehouse([{ answered: 'v2', predictionTime: since + 3_600_000, scores: null }]);
    await new ModelController({ ...early.deps, pairs: w.reader }).tick();
    expect(w.asked).toEqual([]);
    expect(early.published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:PROMOTED']);
    // Time up with a few usable pairs (fewer than min_labels): kept on them, nothing asked.
    const few = promotedV2(week_of('v2', { v2: 0.4, v1: 0.4 }));
    await few.controller.tick();
    expect(few.asked).toEqual([]);
    expect(few.published.at(-1)).toMatchObject({ version: 'v1', kind: 'RETIRED' });
    expect(JSON.parse(few.published.at(-1)!.evidence!)).toMatchObject({ n: 8 });
  });
});

describe('unusable pairs', () => {
  it('rows the warehouse left out (scores outside [0, 1]: margins) are counted as skipped, and said once per comparison', async () => {
    const { published, deps } = setup({});
    // A challenger scoring binary:logitraw margins: every labelled row is unusable, none is a pair.
    const later = T0 + 60 * 86_400_000;
    const warnings: Array<Record<string, unknown> & { msg: string | undefined }> = [];
    const controller = new ModelController({
      ...deps,
      now: () => T0 + 3_600_000,
      pairs: {
        answeredSince: notAsked,
        labelClock: async () => ({ labelTime: T0 + 3_000_000, predictionTime: T0 + 2_999_000 }),
        readPairs: async () => ({ pairs: [], unusable: { labelNotBinary: 2, scoreNotProbability: 1200, unscored: 7 } }),
      },
      logger: { ...silentLogger, warn: (o: object, msg?: string) => warnings.push({ ...o, msg }) },
    });
    const skipped = async () =>
      Object.fromEntries(
        (
          (await deps.registry.getSingleMetric('driftline_model_controller_skipped_pairs_total')?.get())?.values ?? []
        ).map((v) => [v.labels.reason, v.value]),
      );
    await controller.tick();
    expect(await skipped()).toEqual({ score_not_probability: 1200, label_not_binary: 2, unscored: 7 });
    await controller.tick();
    // Counted at every tick that reads them, like every skipped pair.
    expect(await skipped()).toEqual({ score_not_probability: 2400, label_not_binary: 4, unscored: 14 });
    expect(warnings.map((w) => [w.model, w.reason, w.rows, w.challenger])).toEqual([
      ['fraud', 'scoreNotProbability', 1200, 'v2'],
      ['fraud', 'labelNotBinary', 2, 'v2'],
      ['fraud', 'unscored', 7, 'v2'],
    ]);
    // A shadow's rows where a version could not score: left out, said why.
    expect(warnings[2]?.msg).toMatch(/could not score the request.*left out of this shadow or watch comparison/);
    expect(warnings[0]?.msg).toMatch(/score outside \[0, 1\].*objective is not a probability/);
    // It still ends on max_time with no pair (nothing to compare), but no longer in silence.
    const ended = new ModelController({
      ...deps,
      now: () => later,
      pairs: {
        answeredSince: notAsked,
        labelClock: async () => ({ labelTime: later, predictionTime: later - 1_000 }),
        readPairs: async () => ({ pairs: [], unusable: { labelNotBinary: 0, scoreNotProbability: 5000 } }),
      },
    });
    await ended.tick();
    expect(published.at(-1)).toMatchObject({ version: 'v2', kind: 'REJECTED' });
    expect(JSON.parse(published.at(-1)!.evidence!)).toMatchObject({ n: 0 });
  });
});

describe('models the policy file does not list', () => {
  /** fraud and churn, each with v2 in shadow, v2 overwhelmingly better; the reads and info lines recorded. */
  function twoModels(policyText: string) {
    const { store, published, deps } = setup({ v1: 0.1, v2: 0.95 });
    for (const r of [...store.rows.values()])
      store.rows.set(`churn/${r.version}/${r.to_stage}`, { ...r, model: 'churn' });
    const reads: string[] = [];
    const info: string[] = [];
    const pairs = pairsFor({ v1: 0.1, v2: 0.95 });
    const controller = new ModelController({
      ...deps,
      policies: parseRolloutPolicyText(policyText, 'rollout.yaml'),
      pairs: {
        answeredSince: notAsked,
        labelClock: pairs.labelClock,
        readPairs: (q) => {
          reads.push(q.model);
          return pairs.readPairs(q);
        },
      },
      logger: { ...silentLogger, info: (o: object, msg?: string) => info.push(`${JSON.stringify(o)} ${msg}`) },
    });
    return { controller, published, reads, info };
  }

  it('a model left out of the file gets the defaults: its shadow is compared and moves on', async () => {
    const { controller, published, reads } = twoModels(
      'defaults:\n  promotion: { min_labels: 50 }\n  rollback: { min_labels: 50 }\nmodels:\n  fraud:\n    canary_share: 0.3\n',
    );
    await controller.tick();
    await controller.tick();
    expect(reads).toContain('churn');
    const churn = published.filter((e) => e.model === 'churn').map((e) => `${e.version}:${e.kind}`);
    expect(churn).toEqual(['v2:SHADOW', 'v2:CANARY', 'v2:PROMOTED']);
    // The defaults' canary share (0.1), not fraud's.
    expect(published.find((e) => e.model === 'churn' && e.kind === 'CANARY')?.canary_share).toBe(0.1);
    expect(published.find((e) => e.model === 'fraud' && e.kind === 'CANARY')?.canary_share).toBe(0.3);
  });

  it('`manual: true` opts a model out, explicitly: no pair is read for it, and the controller says so once', async () => {
    const { controller, published, reads, info } = twoModels(
      'defaults:\n  promotion: { min_labels: 50 }\nmodels:\n  churn: { manual: true }\n',
    );
    await controller.tick();
    await controller.tick();
    expect(reads.filter((m) => m === 'churn')).toEqual([]);
    expect(published.filter((e) => e.model === 'churn').map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:SHADOW']);
    expect(info.filter((l) => l.includes('"churn"') && l.includes('manual'))).toHaveLength(1);
    expect(reads).toContain('fraud');
  });
});

describe('controllers sharing the models (their group as a lease per model; found by a review)', () => {
  /** fraud and churn with v2 in shadow and better; `ownership` answers for each model; the reads recorded. */
  function twoModels(ownership: (model: string) => Ownership, onReadPairs: (model: string) => void = () => {}) {
    const { store, published, deps } = setup({ v1: 0.1, v2: 0.95 });
    for (const r of [...store.rows.values()])
      store.rows.set(`churn/${r.version}/${r.to_stage}`, { ...r, model: 'churn' });
    const histories: string[] = [];
    const info: string[] = [];
    const transitions: ModelTransitionStore = {
      record: (rows) => store.record(rows),
      models: () => store.models(),
      artifacts: (model, version) => store.artifacts(model, version),
      history: (model) => {
        histories.push(model);
        return store.history(model);
      },
    };
    const controller = new ModelController({
      ...deps,
      transitions,
      ownership,
      pairs: {
        ...deps.pairs,
        readPairs: (q) => {
          onReadPairs(q.model);
          return deps.pairs.readPairs(q);
        },
      },
      logger: { ...silentLogger, info: (o: object, msg?: string) => info.push(`${JSON.stringify(o)} ${msg}`) },
    });
    const events = (model: string) => published.filter((e) => e.model === model).map((e) => `${e.version}:${e.kind}`);
    return { controller, store, events, histories, info, registry: deps.registry };
  }

  it("another controller's model is neither read, published nor decided here; this one's is", async () => {
    const { controller, store, events, histories, registry } = twoModels((m) => (m === 'fraud' ? 'decide' : 'none'));
    const tick = await controller.tick();
    expect(tick).toMatchObject({ models: 2, notOwned: 1, failed: 0 });
    expect(histories).toEqual(['fraud', 'fraud']); // read again just before its decision is recorded
    expect(events('churn')).toEqual([]);
    expect(store.rows.has('churn/v2/canary')).toBe(false);
    expect(events('fraud')).toEqual(['v2:SHADOW', 'v2:CANARY']);
    const gauge = await registry.getSingleMetricAsString('driftline_model_controller_models');
    expect(gauge).toMatch(/ownership="decide"[^}]*\} 1$/m);
    expect(gauge).toMatch(/ownership="none"[^}]*\} 1$/m);
  });

  it('a model just taken over (settling) is re-published, not decided', async () => {
    const { controller, store, events } = twoModels(() => 'publish');
    await controller.tick();
    expect(events('fraud')).toEqual(['v2:SHADOW']);
    expect(events('churn')).toEqual(['v2:SHADOW']);
    expect(store.rows.has('fraud/v2/canary') || store.rows.has('churn/v2/canary')).toBe(false);
  });

  it('a model that goes to another controller during its tick: the decision is not recorded (checked just before the write)', async () => {
    // fraud is this controller's when the tick begins, and another's once its pairs have been read.
    let lost = false;
    const { controller, store, events, info } = twoModels(
      (m) => (m === 'fraud' && !lost ? 'decide' : 'none'),
      (m) => {
        if (m === 'fraud') lost = true;
      },
    );
    const tick = await controller.tick();
    expect(tick.transitions).toEqual([]);
    expect(store.rows.has('fraud/v2/canary')).toBe(false);
    expect(events('fraud')).toEqual(['v2:SHADOW']);
    expect(info.filter((l) => l.includes('went to another controller'))).toHaveLength(1);
  });
});

describe("an operator's move during a tick is not undone by the tick's decision (found by a review)", () => {
  it('a canary rolled back by hand while the tick reads its pairs is not promoted: the decision is dropped, the rollback published', async () => {
    const W = Date.UTC(2026, 11, 6, 12); // the operator's and the controller's wall clock
    const E = W + 20 * 60_000; // event time 20 min ahead of it (within the allowed future)
    const log: string[] = [];
    const store = new MemoryTransitions(log);
    const at = (version: string, from: TransitionRow['from_stage'], to: TransitionRow['to_stage'], t: number) => ({
      ...row(version, from, to, t, version === 'v2' && from !== null ? 'v1' : null),
      recorded_at: W,
    });
    for (const r of [
      at('v1', null, 'candidate', E - 900_000),
      at('v1', 'candidate', 'shadow', E - 900_000),
      at('v1', 'shadow', 'canary', E - 800_000),
      at('v1', 'canary', 'production', E - 700_000),
      at('v2', null, 'candidate', E - 600_000),
      at('v2', 'candidate', 'shadow', E - 600_000),
      { ...at('v2', 'shadow', 'canary', E - 500_000), evidence: JSON.stringify({ serving_from: E - 500_000 }) },
    ])
      store.rows.set(`fraud/${r.version}/${r.to_stage}`, r);
    // The canary's own answers, better than v1: the tick promotes it to production.
    const { reader } = labelledTable(
      batch('c', 'v2', 'canary', E - 400_000, 300, { v1: 0.2, v2: 0.9 }).map((r) => ({
        ...r,
        joinedAt: r.labelTime - 25 * 60_000,
      })),
    );
    let operatorMoved = false;
    const info: string[] = [];
    const published: string[] = [];
    const controller = new ModelController({
      transitions: store,
      pairs: {
        ...reader,
        readPairs: async (q) => {
          if (!operatorMoved) {
            // `driftline model stage --version v2 --to rolled_back` lands during the tick's reads.
            operatorMoved = true;
            const moves = operatorTransitions(await store.history('fraud'), 'fraud', {
              version: 'v2',
              to: 'rolled_back',
              at: W,
              operator: 'alice',
              reason: 'manual rollback',
            });
            await store.record(moves.map((m) => ({ ...m, model: 'fraud', recorded_at: W })));
          }
          return reader.readPairs(q);
        },
      },
      publish: async (events) => {
        published.push(...events.map((e) => `${e.version}:${e.kind}`));
      },
      policies,
      maxPairs: 100_000,
      logger: { ...silentLogger, info: (o: object, msg?: string) => info.push(`${JSON.stringify(o)} ${msg}`) },
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      now: () => W,
    });
    const first = await controller.tick();
    // Before: v2 canary → production recorded (dated after the operator's rollback) and published.
    expect(first.transitions).toEqual([]);
    expect(store.rows.has('fraud/v2/production')).toBe(false);
    expect(info.filter((l) => l.includes('transitions changed during its tick'))).toHaveLength(1);
    for (let i = 0; i < 2; i++) await controller.tick();
    const history = await store.history('fraud');
    expect(history.filter((r) => r.version === 'v2').map((r) => `${r.to_stage} ${r.decided_by}`)).toEqual([
      'candidate trainer:offline_gate',
      'shadow trainer:offline_gate',
      'canary trainer:offline_gate',
      'rolled_back operator:alice',
    ]);
    const view = viewOf(history);
    expect(view.production).toBe('v1');
    expect(view.versions.get('v2')?.stage).toBe('rolled_back');
    expect(published).toContain('v2:ROLLED_BACK');
    expect(published).not.toContain('v2:PROMOTED');
  });
});

describe('config', () => {
  it('reads the policy file; errors name the variable or the field in the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'controller-'));
    const file = join(dir, 'rollout.yaml');
    writeFileSync(
      file,
      'models:\n  fraud:\n    promotion: { min_labels: 20, max_labels: 200 }\n    canary_share: 0.3\n',
    );
    const c = toModelControllerConfig(parseEnv(modelControllerEnvShape, { DRIFTLINE_PROMOTION_POLICY: file }));
    expect(c).toMatchObject({ intervalMs: 10_000, maxPairs: 100_000 });
    expect(c.policies.models.fraud).toMatchObject({ canaryShare: 0.3, promotion: { minLabels: 20 } });
    writeFileSync(file, 'models:\n  fraud:\n    promotion: { min_labels: -1 }\n');
    expect(() =>
      toModelControllerConfig(parseEnv(modelControllerEnvShape, { DRIFTLINE_PROMOTION_POLICY: file })),
    ).toThrow(`${file}.models.fraud.promotion.min_labels`);
    expect(() =>
      toModelControllerConfig(
        parseEnv(modelControllerEnvShape, { DRIFTLINE_PROMOTION_POLICY: join(dir, 'missing.yaml') }),
      ),
    ).toThrow(/^DRIFTLINE_PROMOTION_POLICY: cannot read/);
    expect(() =>
      toModelControllerConfig(parseEnv(modelControllerEnvShape, { DRIFTLINE_MODEL_CONTROLLER_MAX_PAIRS: '1000' })),
    ).toThrow(
      new ConfigError(
        // Without a file every model gets the defaults: named as such (not `models.*`).
        'default rollout policy.defaults.promotion.max_labels',
        '100000 is above DRIFTLINE_MODEL_CONTROLLER_MAX_PAIRS (1000); lower it or raise the bound',
      ).message,
    );
    // A default above the bound that only the models the file does not list use: named where it is written.
    writeFileSync(
      file,
      'defaults:\n  promotion: { max_labels: 5000 }\n  rollback: { max_labels: 500 }\nmodels:\n  fraud:\n    promotion: { min_labels: 20, max_labels: 200 }\n',
    );
    expect(() =>
      toModelControllerConfig(
        parseEnv(modelControllerEnvShape, {
          DRIFTLINE_PROMOTION_POLICY: file,
          DRIFTLINE_MODEL_CONTROLLER_MAX_PAIRS: '1000',
        }),
      ),
    ).toThrow(`${file}.defaults.promotion.max_labels: 5000 is above`);
    expect(() => parseEnv(modelControllerEnvShape, { DRIFTLINE_MODEL_CONTROLLER_INTERVAL: 'soon' })).toThrow(
      /DRIFTLINE_MODEL_CONTROLLER_INTERVAL/,
    );
    // Above what one read of the warehouse returns: refused at start, not failed on every tick.
    expect(() => parseEnv(modelControllerEnvShape, { DRIFTLINE_MODEL_CONTROLLER_MAX_PAIRS: '5000000' })).toThrow(
      /DRIFTLINE_MODEL_CONTROLLER_MAX_PAIRS/,
    );
  });
});

describe('each stage is decided on the requests it is about (found by a review)', () => {
  it('one batch answered by production (the shadow scored) takes the shadow to canary and no further; canary answers promote it, its production answers retire the old version', async () => {
    const { store, published, deps } = setup({});
    const rows = batch('p', 'v1', 'production', T0 + 500, 400, { v1: 0.2, v2: 0.8 });
    const table = labelledTable(rows);
    const controller = new ModelController({ ...deps, pairs: table.reader });
    const kinds = () => published.map((e) => `${e.version}:${e.kind}`);
    for (let i = 0; i < 4; i++) await controller.tick();
    // Before, the same rows decided the canary stage and the watch too: v1 retired within seconds,
    // though v2 never answered a request.
    expect(kinds()).toEqual(['v2:SHADOW', 'v2:CANARY']);
    expect(new Set(table.reads)).toEqual(new Set(['v1/production', 'v2/canary']));
    // The canary's own answers (production scored them too) decide canary → production.
    const canaryAt = store.rows.get('fraud/v2/canary')!.at;
    rows.push(...batch('c', 'v2', 'canary', canaryAt + 1, 400, { v1: 0.2, v2: 0.8 }));
    for (let i = 0; i < 3; i++) await controller.tick();
    expect(kinds()).toEqual(['v2:SHADOW', 'v2:CANARY', 'v2:PROMOTED']);
    expect(table.reads.at(-1)).toBe('v2/production'); // the watch: v2's production answers, none yet
    // The new production's own answers (v1 still scored) decide the watch.
    const promotedAt = store.rows.get('fraud/v2/production')!.at;
    rows.push(...batch('w', 'v2', 'production', promotedAt + 1, 400, { v1: 0.2, v2: 0.8 }));
    await controller.tick();
    expect(kinds()).toEqual(['v2:SHADOW', 'v2:CANARY', 'v2:PROMOTED', 'v1:RETIRED']);
    // Each decision was dated after the rows it read began.
    expect(promotedAt).toBeGreaterThan(canaryAt + 1);
    expect(store.rows.get('fraud/v1/retired')!.at).toBeGreaterThan(promotedAt + 1);
  });
});

describe("the controller's clock: one row dated ahead cannot move it (found by a review)", () => {
  const hourly = parseRolloutPolicy({ defaults: { promotion: { min_labels: 40, max_time: '1h' }, arrival_bucket: 0 } });

  it('one labelled prediction dated 50 min ahead does not end a shadow on max_time', async () => {
    const { published, deps } = setup({});
    const now = T0 + 30 * 60_000;
    // 21 labelled requests of equal versions in the shadow's first 20 minutes, and one dated now + 50 min.
    const rows = batch('p', 'v1', 'production', T0, 21, { v1: 0.5, v2: 0.5 });
    rows.push({ ...rows[0]!, id: 'ahead', predictionTime: now + 50 * 60_000, labelTime: now + 50 * 60_000 + 1_000 });
    const table = labelledTable(rows);
    const controller = new ModelController({ ...deps, policies: hourly, now: () => now, pairs: table.reader });
    const tick = await controller.tick();
    // Before: rejected, "4800000 ms elapsed with 22/40 labels", dated now + 50 min.
    expect(tick.transitions).toEqual([]);
    expect(published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:SHADOW']);
  });

  it('a model with fewer labelled rows than the quorum ends on max_time, dated by the label that ends it (found by a review)', async () => {
    // A quorum over every row made the clock the oldest of four rows: never at max_time, and the
    // pairs' times clamped to it dated decisions before their labels.
    const { published, deps } = setup({});
    const minutes = [0, 20, 40, 65];
    const rows = batch('p', 'v1', 'production', T0, 4, { v1: 0.5, v2: 0.5 }).map((r, i) => ({
      ...r,
      predictionTime: T0 + minutes[i]! * 60_000,
      labelTime: T0 + minutes[i]! * 60_000 + 30_000,
    }));
    const now = T0 + 2 * 3_600_000;
    const tick = await new ModelController({
      ...deps,
      policies: hourly,
      now: () => now,
      pairs: labelledTable(rows).reader,
    }).tick();
    expect(tick.transitions.map((t) => [t.to_stage, t.reason, t.at])).toEqual([
      ['rejected', 'too_few_labels', T0 + 65 * 60_000 + 30_000],
    ]);
    expect(published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:SHADOW', 'v2:REJECTED']);
  });

  it('event time running ahead of the wall clock, within the allowed future, is decided on (a replay, the demo)', async () => {
    const { published, deps } = setup({});
    const now = T0 + 3_600_000;
    // Every label dated 10 minutes after the wall clock: an accelerated run, or a producer ahead.
    const rows = batch('p', 'v1', 'production', T0, 200, { v1: 0.2, v2: 0.8 }, now - T0 + 10 * 60_000);
    const controller = new ModelController({ ...deps, now: () => now, pairs: labelledTable(rows).reader });
    // Capped at the wall clock, nothing was decided until it caught up: the demo never promoted.
    const decided = await controller.tick();
    expect(decided.transitions.map((t) => t.to_stage)).toEqual(['canary']);
    expect(published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:SHADOW', 'v2:CANARY']);
  });

  it('rows dated more than the allowed future past their arrival are left out for good: said once per comparison, counted by reason, whatever the wall clock', async () => {
    const { deps } = setup({});
    // Joined two hours before their label times (a label-joiner whose clock runs slow, or producers ahead).
    const rows = batch('p', 'v1', 'production', T0 + 2 * 3_600_000, 50, { v1: 0.5, v2: 0.5 }).map((r) => ({
      ...r,
      joinedAt: T0,
    }));
    const warnings: Array<Record<string, unknown> & { msg: string | undefined }> = [];
    // This host's clock a day later: every row is within its bound, and they are still left out.
    const controller = new ModelController({
      ...deps,
      now: () => T0 + 86_400_000,
      pairs: labelledTable(rows).reader,
      logger: { ...silentLogger, warn: (o: object, msg?: string) => warnings.push({ ...o, msg }) },
    });
    await controller.tick();
    await controller.tick();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      model: 'fraud',
      kind: 'promotion',
      challenger: 'v2',
      reason: 'timeBeyondFuture',
      rows: 50,
      max_future_ms: 3_600_000,
      most_ahead_ms: rows.at(-1)!.labelTime - T0,
    });
    expect(warnings[0]!.msg).toMatch(
      /arrival \(joined_at\) \+ DRIFTLINE_EVENT_TIME_MAX_FUTURE left out for good: this controller's/,
    );
    const values = async (name: string) =>
      ((await deps.registry.getSingleMetric(name)?.get())?.values ?? []).map((v) => [v.labels.reason, v.value]);
    expect(await values('driftline_model_controller_skipped_pairs_total')).toEqual([['time_beyond_future', 100]]);
    expect(await values('driftline_model_controller_paired_rows_total')).toEqual([[undefined, 100]]);
  });

  it("says once when rows arrive after this host's clock: its clock runs behind the label-joiner's (found by a review)", async () => {
    const { deps } = setup({});
    // Joined at true time, this host's clock two hours behind: nothing is left out, every pair waits.
    const rows = batch('p', 'v1', 'production', T0, 50, { v1: 0.5, v2: 0.5 }).map((r) => ({
      ...r,
      joinedAt: r.labelTime,
    }));
    const warnings: Array<Record<string, unknown> & { msg: string | undefined }> = [];
    let now = rows.at(-1)!.joinedAt - 2 * 3_600_000;
    const controller = new ModelController({
      ...deps,
      now: () => now,
      pairs: labelledTable(rows).reader,
      logger: { ...silentLogger, warn: (o: object, msg?: string) => warnings.push({ ...o, msg }) },
    });
    await controller.tick();
    await controller.tick();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ model: 'fraud', behind_ms: 2 * 3_600_000 });
    expect(warnings[0]!.msg).toMatch(/this host's clock runs behind the label-joiner's/);
    // The clock put right: nothing more to say.
    now = rows.at(-1)!.joinedAt + 1_000;
    await controller.tick();
    expect(warnings).toHaveLength(1);
  });
});

describe('records dated ahead of event time by a wall clock (a replay or backfill a month behind; found by a review)', () => {
  const DAY = 86_400_000;
  const E0 = T0 - 30 * DAY; // event time: a month behind the wall clock
  const hourly = parseRolloutPolicy({
    defaults: {
      promotion: { min_labels: 50, max_time: '4h' },
      rollback: { min_labels: 50, max_time: '4h' },
      arrival_bucket: 0,
    },
  });

  it('a shadow registered at the wall clock, a month ahead of every prediction, is decided on its pairs', async () => {
    const { published, deps } = setup({});
    const rows = batch('p', 'v1', 'production', E0, 400, { v1: 0.2, v2: 0.8 });
    const controller = new ModelController({
      ...deps,
      policies: hourly,
      now: () => T0,
      pairs: labelledTable(rows).reader,
    });
    for (let i = 0; i < 3; i++) await controller.tick();
    // Before: its pairs were read from its `since` (T0, a month after them) and its max_time ran on
    // a clock the rows never reach: no transition, no log line, for as long as the replay ran.
    expect(published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:SHADOW', 'v2:CANARY']);
  });

  it('a degrading production promoted after such a record (dated after it) is watched on its own answers and rolled back', async () => {
    const { store, published, deps } = setup({});
    const canaryFrom = E0 + 30 * 60_000;
    store.rows.set('fraud/v2/candidate', row('v2', null, 'candidate', E0));
    store.rows.set('fraud/v2/shadow', row('v2', 'candidate', 'shadow', E0, 'v1'));
    store.rows.set('fraud/v2/canary', {
      ...row('v2', 'shadow', 'canary', canaryFrom, 'v1'),
      evidence: JSON.stringify({ serving_from: canaryFrom }),
    });
    // v3 registered by the trainer at its wall clock: every later transition is dated after it.
    store.rows.set('fraud/v3/candidate', row('v3', null, 'candidate', T0));
    store.rows.set('fraud/v3/shadow', row('v3', 'candidate', 'shadow', T0, 'v1'));
    // v2 good as a canary: promoted (dated T0 + 1, a month ahead of its answers).
    const rows = batch('c', 'v2', 'canary', canaryFrom + 1_000, 200, { v1: 0.5, v2: 0.9, v3: 0.5 });
    const table = labelledTable(rows);
    const controller = new ModelController({ ...deps, policies: hourly, now: () => T0 + DAY, pairs: table.reader });
    await controller.tick();
    const promoted = store.rows.get('fraud/v2/production')!;
    expect(promoted.at).toBeGreaterThan(T0);
    // Its serving_from is the event clock of the deciding tick, not its `at`.
    expect(JSON.parse(promoted.evidence).serving_from).toBe(rows.at(-1)!.labelTime);
    // Worse than v1 once it serves everything: the watch reads its production answers and rolls it back.
    rows.push(
      ...batch('w', 'v2', 'production', rows.at(-1)!.predictionTime + 60_000, 300, { v1: 0.9, v2: 0.1, v3: 0.5 }),
    );
    await controller.tick();
    // Before: the watch read from the promotion's `at` (a month after every row) and never decided.
    expect(published.map((e) => `${e.version}:${e.kind}`)).toEqual([
      'v2:CANARY',
      'v3:SHADOW',
      'v2:PROMOTED',
      'v2:ROLLED_BACK',
    ]);
    expect(store.rows.get('fraud/v2/rolled_back')).toMatchObject({ reason: 'evidence', previous_version: 'v1' });
  });

  it("one row predicted a year back among a degrading production's answers neither ends its watch nor retires the version it replaced (found by a review)", async () => {
    const { store, published, deps } = setup({});
    store.rows.set('fraud/v2/candidate', row('v2', null, 'candidate', E0));
    store.rows.set('fraud/v2/shadow', row('v2', 'candidate', 'shadow', E0, 'v1'));
    // Moved by hand, dated by a wall clock a month ahead, with no serving_from (as before the
    // stage command stored one): the watch reads v2's production answers from 0.
    store.rows.set('fraud/v2/canary', { ...row('v2', 'shadow', 'canary', T0, 'v1'), decided_by: 'operator:alice' });
    store.rows.set('fraud/v2/production', {
      ...row('v2', 'canary', 'production', T0 + 1, 'v1'),
      decided_by: 'operator:alice',
    });
    const worse = { v1: 0.9, v2: 0.1 };
    const rows = batch('w', 'v2', 'production', E0 + 60_000, 30, worse);
    // A backfill row, or a late client: answered by v2 as production, predicted a year before.
    const [straggler] = batch('old', 'v2', 'production', E0 - 365 * DAY, 1, worse);
    rows.splice(3, 0, straggler!);
    const controller = new ModelController({
      ...deps,
      policies: hourly,
      now: () => T0 + DAY,
      pairs: labelledTable(rows).reader,
    });
    await controller.tick();
    // Before: kept too_few_labels (max_time counted from the straggler, a year back): v1 retired,
    // the rollback safety net gone after 30 bad pairs.
    expect(store.rows.get('fraud/v1/retired')).toBeUndefined();
    rows.push(...batch('w2', 'v2', 'production', E0 + 120_000, 300, worse));
    await controller.tick();
    expect(published.map((e) => `${e.version}:${e.kind}`)).toEqual(['v2:PROMOTED', 'v2:ROLLED_BACK']);
  });
});

describe('what the controller remembers of its re-publishes (found by a memory review)', () => {
  it('forgets versions that left the history read: bounded by that read, not by every version ever trained', async () => {
    const HISTORY = 40; // as MAX_HISTORY_ROWS bounds the ClickHouse read: the newest rows only
    const log: string[] = [];
    const store = new (class extends MemoryTransitions {
      override async history(model: string) {
        return (await super.history(model)).slice(-HISTORY);
      }
    })(log);
    const published: ModelEvent[] = [];
    const controller = new ModelController({
      transitions: store,
      pairs: pairsFor({}),
      publish: async (events: readonly ModelEvent[]) => {
        published.push(...events);
      },
      policies,
      maxPairs: 100_000,
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      now: () => T0 + 86_400_000,
      ownership: () => 'publish', // re-publish only: what is remembered, not what is decided
    });
    // 500 retrains, each version registered then retired (two rows), one tick after each.
    for (let i = 0; i < 500; i++) {
      const v = `v${String(i).padStart(4, '0')}`;
      store.rows.set(`fraud/${v}/candidate`, row(v, null, 'candidate', T0 + i * 2_000));
      store.rows.set(`fraud/${v}/retired`, row(v, 'candidate', 'retired', T0 + i * 2_000 + 1_000));
      await controller.tick();
    }
    // Every version's current transition published once, none twice.
    expect(published).toHaveLength(500);
    expect(new Set(published.map((e) => e.version)).size).toBe(500);
    // Remembered: the versions of the last history read (20), not the 500 ever published.
    expect(controller.rememberedVersions).toBeLessThanOrEqual(HISTORY / 2);
    // A tick more publishes nothing again.
    await controller.tick();
    expect(published).toHaveLength(500);
  });
});
