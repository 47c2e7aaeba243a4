import { DriftlineError, silentLogger } from '@driftline/core';
import { parseFeatureViewsText } from '@driftline/features';
import type { DecodedRecord } from '@driftline/kafka';
import {
  EMPTY_STAGES,
  MAX_ENDED,
  MAX_PRODUCTIONS,
  MAX_SHADOWS,
  MAX_WATCHED,
  reduceStages,
  type StageEvent,
} from '@driftline/policy';
import type { ModelEvent } from '@driftline/schemas';
import { syntheticModelJson } from '@driftline/scoring/bench';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { modelsFollower } from '../src/models-follower.js';
import { ServingTable } from '../src/serving.js';
import { createStageApplier } from '../src/stage-retry.js';
import { buildVersion } from '../src/version.js';
import { FEATURES, VIEWS_YAML } from './fixtures.js';

const event = (model: string, kind: ModelEvent['kind'], version: string): ModelEvent => ({
  model,
  version,
  kind,
  event_time: 1_700_000_000_000,
  request_id: null,
  metrics: {},
  artifact_uri: '',
  reference_uri: null,
  decided_by: 'operator:test',
});
const records = (from: number, events: ModelEvent[]): DecodedRecord<ModelEvent>[] =>
  events.map((value, i) => ({
    record: {
      topic: 'models.v1',
      partition: 0,
      offset: String(from + i),
      key: null,
      value: null,
      headers: {},
      timestamp: 0,
    },
    value,
  }));

function follower() {
  const calls: Array<[string, string[]] | [string, string[], unknown]> = [];
  const f = modelsFollower(async (model, events, replay) => {
    const list = events.map((e) => `${e.kind} ${e.version}`);
    calls.push(replay === undefined ? [model, list] : [model, list, replay]);
  });
  return { f, calls };
}

const history = [
  event('fraud', 'PROMOTED', 'v1'),
  event('churn', 'PROMOTED', 'v1'),
  event('fraud', 'SHADOW', 'v2'),
  event('fraud', 'PROMOTED', 'v2'),
  event('fraud', 'RETIRED', 'v1'),
  event('fraud', 'PROMOTED', 'v3'),
];

/** A drawn models.v1 event of `models` and `versions`: a kind, a previous version and a canary share, maybe, and a time step. */
function arbStageEvent(models: readonly string[], versions: readonly string[], shares: readonly number[]) {
  const kinds: ModelEvent['kind'][] = ['TRAINED', 'SHADOW', 'CANARY', 'PROMOTED', 'ROLLED_BACK', 'RETIRED', 'REJECTED'];
  return fc.record({
    model: fc.constantFrom(...models),
    kind: fc.constantFrom(...kinds),
    version: fc.constantFrom(...versions),
    previous: fc.option(fc.constantFrom(...versions), { nil: null }),
    share: fc.option(fc.constantFrom(...shares), { nil: null }),
    // Mostly forward in time, sometimes back (re-published, another controller's clock) or equal.
    dt: fc.integer({ min: -5, max: 20 }),
  });
}

type DrawnStageEvent = ReturnType<typeof arbStageEvent> extends fc.Arbitrary<infer T> ? T : never;

/** The replay's and the later drawn events as models.v1 events, on one clock stepped by each draw's `dt`. */
function timedEvents(
  drawn: readonly DrawnStageEvent[],
  after: readonly DrawnStageEvent[],
): { events: ModelEvent[]; later: ModelEvent[] } {
  let t = 1_700_000_000_000;
  const timed = (d: DrawnStageEvent): ModelEvent => {
    t += d.dt;
    return { ...event(d.model, d.kind, d.version), event_time: t, previous_version: d.previous, canary_share: d.share };
  };
  return { events: drawn.map(timed), later: after.map(timed) };
}

/** A serving table whose loads `fail` may refuse (it throws) by version; the others load a synthetic model. */
function tableLoading(fail: (version: string) => void): ServingTable {
  return new ServingTable({
    views: parseFeatureViewsText(VIEWS_YAML),
    canaries: new Map(),
    shadows: new Map(),
    logger: silentLogger,
    load: async (model, version) => {
      fail(version);
      return buildVersion(model, version, syntheticModelJson(version.length, 3, 2, 4), { features: FEATURES });
    },
  });
}

/**
 * A start-up replay applied two ways, each on a table of its own with the service's applier
 * (retries `retryMs` apart): every event of each model held and applied at once (`whole`, as before
 * the fold, and as a live batch is), and folded by the follower as read in batches of the sizes of
 * `cuts` (`folded`). `applyLater` applies later events to both, as live batches.
 */
async function replayBothWays(
  models: readonly string[],
  events: readonly ModelEvent[],
  cuts: readonly number[],
  table: () => ServingTable,
  retryMs: number,
) {
  const applier = (tbl: ServingTable) =>
    createStageApplier({
      apply: (m, e, replayed, from) => tbl.apply(m, e, replayed, from),
      stagesOf: (m) => tbl.stagesOf(m),
      follows: (m) => tbl.follows(m),
      logger: silentLogger,
      firstDelayMs: retryMs,
      maxDelayMs: retryMs,
    });
  const whole = table();
  const wholeApplier = applier(whole);
  await Promise.all(
    models.map((m) => {
      const own: StageEvent[] = events.filter((e) => e.model === m);
      return own.length === 0 ? undefined : wholeApplier.apply(m, own);
    }),
  );
  const folded = table();
  const foldedApplier = applier(folded);
  const follower = modelsFollower((m, e, replay) => foldedApplier.apply(m, e, replay), {
    admit: (m, e) => foldedApplier.admit(m, e),
  });
  let offset = 0;
  for (let i = 0; offset < events.length; i++) {
    const n = cuts[i % cuts.length]!;
    await follower.process(records(offset, events.slice(offset, offset + n)), { partition: 0 });
    offset += n;
  }
  await follower.finishReplay();
  return {
    whole,
    folded,
    applyLater: async (later: readonly ModelEvent[]) => {
      await Promise.all(
        models.map((m) =>
          wholeApplier.apply(
            m,
            later.filter((e) => e.model === m),
          ),
        ),
      );
      await follower.process(records(offset, [...later]), { partition: 0 });
    },
    stop: () => {
      wholeApplier.stop();
      foldedApplier.stop();
    },
  };
}

describe('models.v1 follower of the model server', () => {
  it('applies a start-up replay read in several batches once per model, in order, when it is read to its end', async () => {
    const { f, calls } = follower();
    await f.process(records(0, history.slice(0, 3)), { partition: 0 });
    await f.process(records(3, history.slice(3)), { partition: 0 });
    expect(calls).toEqual([]); // nothing swapped before the end: no old production served meanwhile
    expect(f.held()).toMatchObject({ models: 2, events: 6 });
    expect(await f.finishReplay()).toBe(2);
    // Folded as read: each model's stages, what its events in order reduce to, and no event held.
    const fraud = history.filter((e) => e.model === 'fraud');
    expect(calls).toEqual([
      ['fraud', [], { stages: reduceStages(EMPTY_STAGES, fraud).stages, events: 5 }],
      ['churn', [], { stages: reduceStages(EMPTY_STAGES, history.slice(1, 2)).stages, events: 1 }],
    ]);
    expect(calls[0]?.[2]).toMatchObject({ stages: { production: 'v3', watched: ['v2'] } });
    expect(f.held()).toEqual({ models: 0, events: 0, entries: 0 });
    expect(await f.finishReplay()).toBe(0); // once
  });

  it('a rejoin reads the topic from its start again: what was applied is skipped, what is new applies', async () => {
    const { f, calls } = follower();
    await f.process(records(0, history), { partition: 0 });
    await f.finishReplay();
    calls.length = 0;
    // The broker restarted: the group (no stored offsets) re-reads from offset 0, in fetch-sized batches.
    await f.process(records(0, history.slice(0, 2)), { partition: 0 });
    await f.process(records(2, [...history.slice(2), event('fraud', 'SHADOW', 'v4')]), { partition: 0 });
    expect(calls).toEqual([['fraud', ['SHADOW v4']]]);
    // Offsets are per partition.
    await f.process(records(0, [event('churn', 'SHADOW', 'v2')]), { partition: 1 });
    expect(calls.at(-1)).toEqual(['churn', ['SHADOW v2']]);
  });

  it('a restarted log (logRestarted: models.v1 recreated) applies its events from offset 0 again', async () => {
    const { f, calls } = follower();
    await f.process(records(0, history), { partition: 0 });
    await f.process(records(0, [event('churn', 'SHADOW', 'v2')]), { partition: 1 });
    await f.finishReplay();
    calls.length = 0;
    f.logRestarted(0);
    // The new log's first events: before, skipped as re-reads of offsets 0 … 5 already applied.
    await f.process(records(0, [event('fraud', 'PROMOTED', 'v4'), event('fraud', 'ROLLED_BACK', 'v4')]), {
      partition: 0,
    });
    expect(calls).toEqual([['fraud', ['PROMOTED v4', 'ROLLED_BACK v4']]]);
    // Only that partition's count starts over: a re-read of partition 1 is still skipped.
    await f.process(records(0, [event('churn', 'SHADOW', 'v2')]), { partition: 1 });
    expect(calls).toHaveLength(1);
  });

  it('holds the replay folded as it reads it: bounded per model however long the history (found by a review)', async () => {
    // models.v1 keeps every event for good: 1,500 versions of one model, each trained, shadowed,
    // promoted over the one before, which is retired (5,999 events). Held as events until the end,
    // they were 5,999 decoded records; folded, the stages keep at most MAX_ENDED ended and
    // MAX_PRODUCTIONS production versions.
    const { f, calls } = follower();
    const long: ModelEvent[] = [];
    let t = 1_700_000_000_000;
    for (let v = 1; v <= 1_500; v++) {
      const at = (kind: ModelEvent['kind'], version: string, extra: Partial<ModelEvent> = {}) =>
        long.push({ ...event('fraud', kind, version), event_time: t++, ...extra });
      at('TRAINED', `v${v}`);
      at('SHADOW', `v${v}`);
      at('PROMOTED', `v${v}`, v > 1 ? { previous_version: `v${v - 1}` } : {});
      if (v > 1) at('RETIRED', `v${v - 1}`);
    }
    for (let i = 0; i < long.length; i += 500) await f.process(records(i, long.slice(i, i + 500)), { partition: 0 });
    const held = f.held();
    expect(held.events).toBe(long.length);
    expect(held.entries).toBeLessThanOrEqual(MAX_ENDED + MAX_PRODUCTIONS + 2 * (2 + MAX_SHADOWS + MAX_WATCHED));
    await f.finishReplay();
    expect(calls[0]?.[2]).toMatchObject({ stages: { production: 'v1500', watched: [] }, events: long.length });
  });

  it('folds only the events admitted (the applier refuses those dated too far ahead), and says each ignored one as read', async () => {
    const ignored: string[] = [];
    const calls: unknown[] = [];
    const f = modelsFollower(
      async (model, events, replay) => {
        calls.push([model, events.length, replay?.events]);
      },
      {
        admit: (_model, events) => events.filter((e) => e.version !== 'future'),
        ignored: (model, e, reason) => ignored.push(`${model} ${e.kind} ${e.version}: ${reason.split(';')[0]}`),
      },
    );
    await f.process(
      records(0, [
        event('fraud', 'PROMOTED', 'future'),
        event('fraud', 'PROMOTED', 'v1'),
        event('fraud', 'RETIRED', 'v1'),
        event('other', 'PROMOTED', 'future'),
      ]),
      { partition: 0 },
    );
    expect(ignored).toEqual(['fraud RETIRED v1: v1 is production']);
    // A model none of whose events is admitted is not applied at all (as the applier did not).
    expect(await f.finishReplay()).toBe(1);
    expect(calls).toEqual([['fraud', 0, 2]]);
  });

  it('applying the folded replay serves exactly what applying every event of it did (property)', async () => {
    const models = ['a', 'b', 'c'];
    // Shares include ones the stages refuse (0, NaN).
    const arbEvent = arbStageEvent(models, ['v1', 'v2', 'v3', 'v4', 'v5', 'v6'], [0.1, 0.5, 1, 0, Number.NaN]);
    // v5 is malformed (given up at once), v6's files are not there yet (retried later: not in this test).
    const table = () =>
      tableLoading((version) => {
        if (version === 'v5') throw new DriftlineError('VALIDATION_FAILED', 'model.json cut short');
        if (version === 'v6') throw new DriftlineError('NOT_FOUND', 'ENOENT: model.json', { retriable: true });
      });
    const serving = (t: ServingTable) => ({
      plans: t.describe().sort((x, y) => x.model.localeCompare(y.model)),
      unserved: t.describeUnserved().sort((x, y) => x.model.localeCompare(y.model)),
      follows: models.map((m) => t.follows(m)),
      givenUp: models.map((m) => t.givenUp(m)),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(arbEvent, { maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 10 }),
        fc.array(arbEvent, { maxLength: 6 }),
        async (drawn, cuts, after) => {
          const { events, later } = timedEvents(drawn, after);
          const both = await replayBothWays(models, events, cuts, table, 3_600_000);
          expect(serving(both.folded)).toEqual(serving(both.whole));
          // And the stages kept: later events apply alike.
          await both.applyLater(later);
          expect(serving(both.folded)).toEqual(serving(both.whole));
          both.stop();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a folded replay retried after a failed load serves what the whole replay serves once the files appear (property; found by a review)', async () => {
    const models = ['a', 'b'];
    const arbEvent = arbStageEvent(models, ['v1', 'v2', 'v3', 'v4', 'v6'], [0.1, 0.5, 1]);
    const serving = (t: ServingTable) =>
      JSON.stringify({
        plans: t.describe().sort((x, y) => x.model.localeCompare(y.model)),
        unserved: t.describeUnserved().sort((x, y) => x.model.localeCompare(y.model)),
        follows: models.map((m) => t.follows(m)),
      });
    /** Both tables' retries run on timers: equal once they have settled (at most 5 s). */
    const settledAlike = async (a: ServingTable, b: ServingTable) => {
      for (const deadline = Date.now() + 5_000; serving(a) !== serving(b) && Date.now() < deadline; )
        await new Promise((r) => setTimeout(r, 5));
      expect(serving(b)).toBe(serving(a));
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(arbEvent, { maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 5 }),
        fc.array(arbEvent, { maxLength: 4 }),
        async (drawn, cuts, after) => {
          // v6's files are missing (retriable) until the gate opens; retries every 5 ms.
          const gate = { open: false };
          const table = () =>
            tableLoading((version) => {
              if (version === 'v6' && !gate.open)
                throw new DriftlineError('NOT_FOUND', 'ENOENT: model.json', { retriable: true });
            });
          const { events, later } = timedEvents(drawn, after);
          const both = await replayBothWays(models, events, cuts, table, 5);
          gate.open = true;
          await settledAlike(both.whole, both.folded);
          await both.applyLater(later);
          await settledAlike(both.whole, both.folded);
          both.stop();
        },
      ),
      { numRuns: 200 },
    );
  }, 120_000);
});
