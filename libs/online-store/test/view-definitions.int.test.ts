import { parseFeatureViewsText } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { checkViewDefinitions, createRedisClient, staleViewsKey, viewDefinitionsKey } from '../src/redis/index.js';
import { recordingLogger } from './support.js';

const stack = inject('stack');
const tooling = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'online-store-test' });
afterAll(() => tooling.disconnect());

// The review's repro (/tmp/review-featpath views.yaml → views2.yaml): amt_max over 1h became 1d.
const viewsText = (amtMax: string, maxEvents = 1000, { ttl = '1h', profile = true, count = '10m' } = {}) => `views:
  - name: spend
    entity: u
    ttl: ${ttl}
    max_events: ${maxEvents}
    features: { amt: double }
    aggregates:
      - { name: amt_max, feature: amt, function: max, window: ${amtMax} }
      - { name: amt_count, feature: amt, function: count, window: ${count} }
${profile ? '  - { name: profile, entity: u, max_events: 7, features: { age: double } }' : ''}
`;
const viewsWith = (...args: Parameters<typeof viewsText>) => parseFeatureViewsText(viewsText(...args));

const HOUR = 3_600_000;

describe('view aggregate definitions checked at start-up (real Redis)', () => {
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await tooling.del(viewDefinitionsKey(p), staleViewsKey(p));
  });

  function subject() {
    const keyPrefix = uniqueName('vd');
    prefixes.push(keyPrefix);
    return async (views: ReturnType<typeof viewsWith>, now = Date.now()) => {
      const errors: Array<{ obj: object; msg?: string }> = [];
      const warnings: Array<{ obj: object; msg?: string }> = [];
      const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
      const logger = recordingLogger('error', errors);
      const stale = await checkViewDefinitions(tooling, {
        keyPrefix,
        views,
        logger: { ...logger, warn: recordingLogger('warn', warnings).warn },
        registry,
        now: () => now,
      });
      const metric = await registry.getSingleMetric('driftline_feature_view_definition_stale')?.get();
      const gauge = metric?.values.map((v) => [v.labels.view, v.value]) ?? [];
      const hashes = {
        definitions: Object.keys(await tooling.hgetall(viewDefinitionsKey(keyPrefix))).sort(),
        stale: Object.keys(await tooling.hgetall(staleViewsKey(keyPrefix))).sort(),
      };
      return { stale, errors, warnings, gauge, hashes };
    };
  }

  it('a harmful change is reported at every start until ttl + the longest window has passed, then forgotten (found by a review)', async () => {
    const start = subject();
    const t0 = Date.now();
    const first = await start(viewsWith('1h'), t0);
    expect([first.stale, first.errors, first.warnings, first.gauge]).toEqual([[], [], [], []]);
    expect(first.hashes).toEqual({ definitions: ['profile', 'spend'], stale: [] });

    const unchanged = await start(viewsWith('60m'), t0);
    expect([unchanged.stale, unchanged.errors, unchanged.warnings, unchanged.gauge]).toEqual([[], [], [], []]);

    const changed = await start(viewsWith('1d', 5000), t0);
    const changes = ['amt_max: max(amt) over 1h → max(amt) over 1d', 'max_events: 1000 → 5000'];
    // ttl 1h + the new longest window 1d
    expect(changed.stale).toEqual([{ view: 'spend', changes, seen: t0, until: t0 + 25 * HOUR }]);
    expect(changed.gauge).toEqual([['spend', 1]]);
    expect(changed.errors).toHaveLength(1);
    expect(changed.errors[0]?.msg).toMatch(
      /^feature view "spend": aggregates changed .*amt_max.*rebuild the view by replaying the features topic/,
    );

    // Restarted (or another instance) before then: the same line and gauge again, not silence.
    const again = await start(viewsWith('1d', 5000), t0 + 24 * HOUR);
    expect(again.stale).toEqual(changed.stale);
    expect(again.gauge).toEqual([['spend', 1]]);
    expect(again.errors.map((e) => e.msg)).toEqual(changed.errors.map((e) => e.msg));

    const healed = await start(viewsWith('1d', 5000), t0 + 25 * HOUR);
    expect([healed.stale, healed.errors, healed.gauge]).toEqual([[], [], []]);
    expect(healed.hashes.stale).toEqual([]);
  });

  it('a change that heals with the next event is one warning; max_events of a view without aggregates is none; a removed view is forgotten', async () => {
    const start = subject();
    await start(viewsWith('1h'));
    // A shortened window, a lowered max_events, the profile view's max_events raised.
    const healing = await start(
      parseFeatureViewsText(viewsText('1h', 500, { count: '5m' }).replace('max_events: 7', 'max_events: 70')),
    );
    expect([healing.stale, healing.errors, healing.gauge]).toEqual([[], [], []]);
    expect(healing.warnings.map((w) => w.msg)).toEqual([
      `feature view "spend": aggregates changed since its rows were written (amt_count: count(amt) over 10m → count(amt) over 5m; max_events: 1000 → 500); stale or missing until each entity's next event, exact from then on`,
    ]);

    const without = await start(viewsWith('1h', 500, { profile: false, count: '5m' }));
    expect(without.hashes.definitions).toEqual(['spend']);
  });

  it('with ttl none a harmful change stays reported until cleared by hand', async () => {
    const start = subject();
    await start(viewsWith('1h', 1000, { ttl: 'none' }));
    const changed = await start(viewsWith('1h', 1000, { ttl: 'none', count: '2h' }));
    expect(changed.stale).toMatchObject([{ view: 'spend', until: null }]);
    const years = await start(viewsWith('1h', 1000, { ttl: 'none', count: '2h' }), Date.now() + 10 * 365 * 24 * HOUR);
    expect(years.gauge).toEqual([['spend', 1]]);
    expect(years.errors[0]?.msg).toMatch(
      /until the view is rebuilt \(ttl none: then clear this with HDEL \S+:view-definitions:stale spend\)/,
    );
  });
});
