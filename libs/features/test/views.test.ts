import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import {
  aggregateDefinition,
  aggregateDefinitionChanges,
  type FeatureView,
  loadFeatureViews,
  parseFeatureViews,
  parseFeatureViewsText,
} from '../src/index.js';

const yaml = `
views:
  - name: user_profile
    entity: user_id
    ttl: 7d
    features:
      age: double
      country: { type: string, description: ISO code }
      premium: boolean
  - name: user_spend
    entity: user_id
    source: spend.v1
    features:
      amount: double
      merchant: string
    aggregates:
      - { feature: amount, function: sum, window: 1h }
      - { name: tx_10m, feature: amount, function: count, window: 10m }
      - { feature: amount, function: max, window: 1d }
`;

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('feature view config', () => {
  it('parses YAML with shorthand and object features, TTLs, sources and aggregates', () => {
    const views = parseFeatureViewsText(yaml);
    const profile = views.get('user_profile')!;
    expect(profile.ttlMs).toBe(7 * 86_400_000);
    expect(profile.source).toBe('features.v1');
    expect(profile.features.map((f) => [f.name, f.type])).toEqual([
      ['age', 'double'],
      ['country', 'string'],
      ['premium', 'boolean'],
    ]);
    const spend = views.get('user_spend')!;
    expect(spend.ttlMs).toBe(0);
    expect(spend.aggregates.map((a) => a.name)).toEqual(['amount_sum_1h', 'tx_10m', 'amount_max_1d']);
    expect(spend.horizonMs).toBe(86_400_000);
    expect(spend.aggregatedFeatures).toEqual(['amount']);
    expect(views.sources).toEqual(['features.v1', 'spend.v1']);
  });

  it('accepts the same document as JSON', () => {
    const views = parseFeatureViewsText(
      JSON.stringify({ views: [{ name: 'v', entity: 'id', features: { x: { type: 'double' } } }] }),
    );
    expect(views.get('v')?.features[0]?.type).toBe('double');
  });

  it.each([
    [
      {
        views: [
          { name: 'a', entity: 'id', features: { x: 'double' } },
          { name: 'b', entity: 'id', features: { age: { type: 'int' } } },
        ],
      },
      'views[1].features.age.type',
      /double, string, boolean/,
    ],
    [{ views: [{ name: 'a', entity: 'id', features: { age: 'long' } }] }, 'views[0].features.age.type', /one of/],
    [{ views: [{ name: 'a', entity: 'id', features: { x: 'double' }, colour: 'red' }] }, 'views[0]', /colour/],
    [{ views: [{ name: 'a', features: { x: 'double' } }] }, 'views[0].entity', /./],
    [{ views: [{ name: '9a', entity: 'id', features: { x: 'double' } }] }, 'views[0].name', /must match/],
    [{ views: [{ name: 'a', entity: 'id', ttl: '7 days', features: { x: 'double' } }] }, 'views[0].ttl', /./],
    [{ views: [{ name: 'a', entity: 'id', features: {} }] }, 'views[0].features', /at least one/],
    [
      { views: [{ name: 'a', entity: 'id', features: { 'bad-name': 'double' } }] },
      'views[0].features.bad-name',
      /must match/,
    ],
    [
      {
        views: [
          { name: 'a', entity: 'id', features: { x: 'double' } },
          { name: 'a', entity: 'id', features: { x: 'double' } },
        ],
      },
      'views[1].name',
      /duplicate/,
    ],
    [
      {
        views: [
          {
            name: 'a',
            entity: 'id',
            features: { x: 'double' },
            aggregates: [{ feature: 'y', function: 'sum', window: '1h' }],
          },
        ],
      },
      'views[0].aggregates[0].feature',
      /unknown feature "y"/,
    ],
    [
      {
        views: [
          {
            name: 'a',
            entity: 'id',
            features: { s: 'string' },
            aggregates: [{ feature: 's', function: 'count', window: '1h' }],
          },
        ],
      },
      'views[0].aggregates[0].feature',
      /double/,
    ],
    [
      {
        views: [
          {
            name: 'a',
            entity: 'id',
            features: { x: 'double' },
            aggregates: [{ feature: 'x', function: 'median', window: '1h' }],
          },
        ],
      },
      'views[0].aggregates[0].function',
      /count, sum/,
    ],
    [
      {
        views: [
          {
            name: 'a',
            entity: 'id',
            features: { x: 'double' },
            aggregates: [{ feature: 'x', function: 'sum', window: '1y' }],
          },
        ],
      },
      'views[0].aggregates[0].window',
      /duration/,
    ],
    [
      {
        views: [
          {
            name: 'a',
            entity: 'id',
            features: { x: 'double' },
            aggregates: [{ name: 'x', feature: 'x', function: 'sum', window: '1h' }],
          },
        ],
      },
      'views[0].aggregates[0].name',
      /already/,
    ],
    [
      { views: [{ name: 'a', entity: 'id', features: { x: 'double' }, removed_features: ['old', 'x'] }] },
      'views[0].removed_features[1]',
      /^views\[0\]\.removed_features\[1\]: "x" is declared under features: a name is either declared or removed, not both$/,
    ],
    [
      { views: [{ name: 'a', entity: 'id', features: { x: 'double' }, removed_features: ['old', 'old'] }] },
      'views[0].removed_features[1]',
      /duplicate name "old"/,
    ],
    [
      {
        views: [
          {
            name: 'a',
            entity: 'id',
            features: { x: 'double' },
            removed_features: ['x_sum_1h'],
            aggregates: [{ feature: 'x', function: 'sum', window: '1h' }],
          },
        ],
      },
      'views[0].aggregates[0].name',
      /"x_sum_1h" is listed in removed_features: a name is either an aggregate's or removed, not both$/,
    ],
    [
      { views: [{ name: 'a', entity: 'id', features: { x: 'double' }, removed_features: ['bad-name'] }] },
      'views[0].removed_features[0]',
      /removed feature name must match/,
    ],
    [
      { views: [{ name: 'a', entity: 'id', features: { x: 'double' }, removed_features: 'old' }] },
      'views[0].removed_features',
      /./,
    ],
    [
      {
        views: [
          {
            name: 'a',
            entity: 'id',
            features: { x: 'double' },
            removed_features: Array.from({ length: 501 }, (_, i) => `f${i}`),
          },
        ],
      },
      'views[0].removed_features',
      /at most 500 names/,
    ],
    [
      {
        views: [
          {
            name: 'a',
            entity: 'id',
            features: { x: 'double' },
            removed_features: ['old'],
            aggregates: [{ feature: 'old', function: 'sum', window: '1h' }],
          },
        ],
      },
      'views[0].aggregates[0].feature',
      /"old" is a removed feature \(removed_features\)/,
    ],
    [{ views: [] }, 'views', /at least one view/],
    [{}, 'views', /./],
  ])('names the field of a bad document (%#)', (document, field, message) => {
    const error = errorOf(() => parseFeatureViews(document));
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
    expect(error.code).toBe('CONFIG_INVALID');
  });

  it('reads removed_features: names producers may still send, neither declared nor part of the aggregate definition', () => {
    const text = (extra: string) => `views:\n  - name: p\n    entity: id\n    features: { x: double }\n${extra}`;
    const view = parseFeatureViewsText(text('    removed_features: [old, legacy]\n')).get('p')!;
    expect([...view.removedFeatures]).toEqual(['old', 'legacy']);
    expect(view.features.map((f) => f.name)).toEqual(['x']);
    expect(view.featureIndex.has('old')).toBe(false);
    const plain = parseFeatureViewsText(text('')).get('p')!;
    expect(plain.removedFeatures.size).toBe(0);
    // Listing a removed name is no change of what the online store keeps per view.
    expect(aggregateDefinition(view)).toBe(aggregateDefinition(plain));
    // Read at start-up, the error is one line naming the field and the file.
    const dir = mkdtempSync(join(tmpdir(), 'views-'));
    try {
      const path = join(dir, 'views.yaml');
      writeFileSync(path, text('    removed_features: [old, x]\n'));
      expect(errorOf(() => loadFeatureViews(path)).message).toBe(
        `views[0].removed_features[1]: "x" is declared under features: a name is either declared or removed, not both (in ${path}, from DRIFTLINE_FEATURE_VIEWS)`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bounds the events kept per entity for window aggregates (max_events), naming the field', () => {
    const view = (extra: Record<string, unknown>) => ({
      views: [
        {
          name: 'v',
          entity: 'e',
          features: { x: 'double' },
          aggregates: [{ feature: 'x', function: 'sum', window: '1h' }],
          ...extra,
        },
      ],
    });
    expect(parseFeatureViews(view({})).views[0]!.maxWindowEvents).toBe(1_000);
    expect(parseFeatureViews(view({ max_events: 20 })).views[0]!.maxWindowEvents).toBe(20);
    expect(parseFeatureViews(view({ max_events: 10_000 })).views[0]!.maxWindowEvents).toBe(10_000);
    // 100,000 was accepted: a write to a hot entity then blocked Redis ~0.3 s (a review).
    const tooMany = errorOf(() => parseFeatureViews(view({ max_events: 10_001 })));
    expect(tooMany.field).toBe('views[0].max_events');
    expect(tooMany.message).toMatch(
      /^views\[0\]\.max_events: must be at most 10000: .*blocks every other Redis client/,
    );
    expect(errorOf(() => parseFeatureViews(view({ max_events: 100_000 }))).message).toMatch(/at most 10000/);
    expect(errorOf(() => parseFeatureViews(view({ max_events: 0 }))).message).toMatch(/max_events/);
  });

  it('takes any max_events of a view without aggregates: it keeps no events, so nothing is bounded', () => {
    // Refused above 10,000 like a view with aggregates: every reader of the file (materializer,
    // feature API, model server, skew monitor, CLI) failed to start, for no protection.
    const plain = (extra: Record<string, unknown>) => ({
      views: [{ name: 'p', entity: 'e', features: { x: 'double' }, ...extra }],
    });
    expect(parseFeatureViews(plain({ max_events: 50_000 })).views[0]!.maxWindowEvents).toBe(50_000);
    expect(parseFeatureViews(plain({ max_events: 50_000, aggregates: [] })).views[0]!.aggregates).toEqual([]);
    // Still a positive integer, named: a typo is not "no effect".
    for (const bad of [0, 1.5, 'many']) {
      const error = errorOf(() => parseFeatureViews(plain({ max_events: bad })));
      expect(error.field).toBe('views[0].max_events');
    }
    // In a file beside a view with aggregates, that one is still bounded (and named by its index).
    const mixed = {
      views: [
        { name: 'p', entity: 'e', features: { x: 'double' }, max_events: 50_000 },
        {
          name: 'w',
          entity: 'e',
          features: { x: 'double' },
          aggregates: [{ feature: 'x', function: 'max', window: '1d' }],
          max_events: 50_000,
        },
      ],
    };
    const refused = errorOf(() => parseFeatureViews(mixed));
    expect(refused.field).toBe('views[1].max_events');
    expect(refused.message).toMatch(/^views\[1\]\.max_events: must be at most 10000: /);
  });

  it('reports malformed YAML as a config error', () => {
    expect(errorOf(() => parseFeatureViewsText('views: [', 'x.yaml')).field).toBe('x.yaml');
  });

  it('reads windows and TTLs in the duration grammar of libs/core', () => {
    const parsed = parseFeatureViews({
      views: [
        {
          name: 'v',
          entity: 'e',
          ttl: '1.5h',
          features: { x: 'double' },
          aggregates: [{ feature: 'x', function: 'sum', window: '90s' }],
        },
      ],
    }).views[0]!;
    expect(parsed.ttlMs).toBe(5_400_000);
    expect(parsed.aggregates[0]).toMatchObject({ name: 'x_sum_90s', windowMs: 90_000 });
    expect(() =>
      parseFeatureViews({ views: [{ name: 'v', entity: 'e', ttl: '1.5ms', features: { x: 'double' } }] }),
    ).toThrow(/ttl/);
  });

  it('reads a plain-number ttl as milliseconds and refuses a zero ttl (it read as "never expires"), naming the field', () => {
    const view = (ttl: unknown) => ({ views: [{ name: 'v', entity: 'e', ttl, features: { x: 'double' } }] });
    expect(parseFeatureViews(view(1_500)).views[0]!.ttlMs).toBe(1_500);
    expect(parseFeatureViews(view('none')).views[0]!.ttlMs).toBe(0);
    for (const zero of [0, '0s', '0ms']) {
      const error = errorOf(() => parseFeatureViews(view(zero)));
      expect(error.field).toBe('views[0].ttl');
      expect(error.message).toMatch(/positive duration, or none/);
    }
  });
});

describe('aggregate definitions (what the online store checks at start-up)', () => {
  const viewOf = (aggregates: string, maxEvents = 1000) =>
    parseFeatureViewsText(
      `views:\n  - {name: s, entity: u, features: {amt: double, fee: double}, max_events: ${maxEvents}, aggregates: ${aggregates}}`,
    ).get('s')!;
  const baseAggregates =
    '[{name: amt_max, feature: amt, function: max, window: 1h}, {feature: fee, function: sum, window: 10m}]';
  const base = viewOf(baseAggregates);

  const changesOf = (view: FeatureView, from = base) => aggregateDefinitionChanges(aggregateDefinition(from), view);
  const none = { rebuild: [], untilNextEvent: [] };

  it('agree with themselves and ignore what does not change a stored value (a window respelled, a removed aggregate)', () => {
    expect(changesOf(base)).toEqual(none);
    expect(
      changesOf(
        viewOf(
          '[{name: amt_max, feature: amt, function: max, window: 60m}, {feature: fee, function: sum, window: 10m}]',
        ),
      ),
    ).toEqual(none);
    expect(changesOf(viewOf('[{name: amt_max, feature: amt, function: max, window: 1h}]'))).toEqual(none);
  });

  it('need a rebuild: a window beyond the old horizon (new or lengthened), a redefined function or feature, a raised max_events', () => {
    expect(
      changesOf(
        viewOf(
          '[{name: amt_max, feature: amt, function: max, window: 1d}, {feature: fee, function: sum, window: 10m}, {feature: amt, function: sum, window: 1d}]',
        ),
      ),
    ).toEqual({
      rebuild: ['amt_max: max(amt) over 1h → max(amt) over 1d', 'amt_sum_1d: added (sum(amt) over 1d)'],
      untilNextEvent: [],
    });
    expect(
      changesOf(
        viewOf(
          '[{name: amt_max, feature: amt, function: sum, window: 1h}, {name: fee_sum_10m, feature: amt, function: sum, window: 10m}]',
        ),
      ).rebuild,
    ).toEqual(['amt_max: max(amt) over 1h → sum(amt) over 1h', 'fee_sum_10m: sum(fee) over 10m → sum(amt) over 10m']);
    expect(changesOf(viewOf(baseAggregates, 5000))).toEqual({
      rebuild: ['max_events: 1000 → 5000'],
      untilNextEvent: [],
    });
  });

  it('need a rebuild: an aggregate over a feature the kept history lacks, or the kept values in another slot order', () => {
    const amtOnly = viewOf('[{name: amt_max, feature: amt, function: max, window: 1h}]');
    expect(
      changesOf(
        viewOf(
          '[{name: amt_max, feature: amt, function: max, window: 1h}, {feature: fee, function: sum, window: 10m}]',
        ),
        amtOnly,
      ),
    ).toEqual({
      rebuild: ['fee_sum_10m: added (sum(fee) over 10m)'],
      untilNextEvent: [],
    });
    // fee first: the members' packed (amt, fee) would be read as (fee, amt).
    expect(
      changesOf(
        viewOf(
          '[{feature: fee, function: sum, window: 10m}, {name: amt_max, feature: amt, function: max, window: 1h}]',
        ),
      ),
    ).toEqual({ rebuild: ['aggregated features: amt, fee → fee, amt'], untilNextEvent: [] });
    // Without aggregates before there is no history: anything added is beyond the old horizon (0).
    const plain = viewOf('[]');
    expect(changesOf(amtOnly, plain).rebuild).toEqual(['amt_max: added (max(amt) over 1h)']);
  });

  it("heal with each entity's next event: an addition or a lengthening within the old horizon, a shortened window, a lowered max_events", () => {
    expect(
      changesOf(
        viewOf(
          '[{name: amt_max, feature: amt, function: max, window: 10m}, {name: fee_sum_10m, feature: fee, function: sum, window: 30m}, {feature: amt, function: count, window: 1h}]',
          500,
        ),
      ),
    ).toEqual({
      rebuild: [],
      untilNextEvent: [
        'amt_max: max(amt) over 1h → max(amt) over 10m',
        'fee_sum_10m: sum(fee) over 10m → sum(fee) over 30m',
        'amt_count_1h: added (count(amt) over 1h)',
        'max_events: 1000 → 500',
      ],
    });
  });

  it('ignore a view without aggregates now (its max_events bounds nothing), and call an unreadable stored value a rebuild', () => {
    expect(changesOf(viewOf('[]', 5000))).toEqual(none);
    expect(changesOf(viewOf('[]', 5000), viewOf('[]'))).toEqual(none);
    // Beyond the ceiling of a view with aggregates too: no replay, no stale flag for an unused bound.
    expect(changesOf(viewOf('[]', 50_000), viewOf('[]'))).toEqual(none);
    expect(changesOf(viewOf('[]'), viewOf('[]', 50_000))).toEqual(none);
    // Aggregates added to a plain view recorded with 50,000: its max_events bounded nothing then either.
    expect(changesOf(viewOf(baseAggregates), viewOf('[]', 50_000)).rebuild).not.toContainEqual(
      expect.stringMatching(/^max_events/),
    );
    expect(aggregateDefinitionChanges('not json', base)).toEqual({
      rebuild: ['unreadable stored definition "not json"'],
      untilNextEvent: [],
    });
  });
});
