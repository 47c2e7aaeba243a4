import { parseFeatureViewsText } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { checkViewDefinitions, createRedisClient, viewDefinitionsKey } from '../src/redis/index.js';
import { recordingLogger } from './support.js';

const stack = inject('stack');
const tooling = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'online-store-test' });
afterAll(() => tooling.disconnect());

// The review's repro (/tmp/review-featpath views.yaml → views2.yaml): amt_max over 1h became 1d.
const viewsWith = (amtMax: string, maxEvents = 1000) =>
  parseFeatureViewsText(`views:
  - name: spend
    entity: u
    max_events: ${maxEvents}
    features: { amt: double }
    aggregates:
      - { name: amt_max, feature: amt, function: max, window: ${amtMax} }
      - { feature: amt, function: count, window: 10m }
  - { name: profile, entity: u, features: { age: double } }
`);

describe('view aggregate definitions checked at start-up (real Redis)', () => {
  const keyPrefix = uniqueName('vd');
  afterAll(async () => {
    await tooling.del(viewDefinitionsKey(keyPrefix));
  });

  async function start(views: ReturnType<typeof viewsWith>) {
    const errors: Array<{ obj: object; msg?: string }> = [];
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const changes = await checkViewDefinitions(tooling, {
      keyPrefix,
      views,
      logger: recordingLogger('error', errors),
      registry,
    });
    const metric = await registry.getSingleMetric('driftline_feature_view_definition_changes_total')?.get();
    return { changes, errors, counted: metric?.values.map((v) => [v.labels.view, v.value]) ?? [] };
  }

  it('a first start records the definitions, an unchanged one reports nothing, a changed one is reported once', async () => {
    const first = await start(viewsWith('1h'));
    expect(first.changes).toEqual([]);
    expect(first.errors).toEqual([]);
    expect(Object.keys(await tooling.hgetall(viewDefinitionsKey(keyPrefix))).sort()).toEqual(['profile', 'spend']);

    const unchanged = await start(viewsWith('60m'));
    expect(unchanged.changes).toEqual([]);
    expect(unchanged.errors).toEqual([]);
    expect(unchanged.counted).toEqual([]);

    const changed = await start(viewsWith('1d', 5000));
    expect(changed.changes).toEqual([
      { view: 'spend', changes: ['amt_max: max(amt) over 1h → max(amt) over 1d', 'max_events: 1000 → 5000'] },
    ]);
    expect(changed.counted).toEqual([['spend', 1]]);
    expect(changed.errors).toHaveLength(1);
    expect(changed.errors[0]?.msg).toMatch(
      /^feature view "spend": aggregates changed .*amt_max.*rebuild the view by replaying the features topic/,
    );

    // The new definition is now the stored one: the next start (another instance) is quiet.
    expect((await start(viewsWith('1d', 5000))).changes).toEqual([]);
  });
});
