import { describe, expect, it } from 'vitest';
import type { DriftPoint, PerformancePoint, ReportData, RetrainEvent } from '../src/index.js';
import { renderReport } from '../src/index.js';

const H = 3_600_000;
const t0 = Date.UTC(2025, 0, 1);

const drift = (feature: string, version: string, k: number, drifted: boolean): DriftPoint => ({
  feature,
  method: 'psi',
  version,
  windowStart: t0 + k * H,
  statistic: drifted ? 0.5 : 0.01,
  pValue: null,
  threshold: 0.2,
  drifted,
});

const perf = (version: string, k: number, rocAuc: number | null): PerformancePoint => ({
  version,
  windowStart: t0 + k * H,
  task: 'binary',
  predictions: 200,
  labeled: rocAuc === null ? 0 : 160,
  labelCoverage: rocAuc === null ? 0 : 0.8,
  metrics: { roc_auc: rocAuc, accuracy: rocAuc },
});

const stage = (k: number, kind: string, version: string, previous: string | null = null): RetrainEvent => ({
  time: t0 + k * H,
  source: 'stage',
  kind,
  version,
  detail: '',
  previous,
});

function data(over: Partial<ReportData>): ReportData {
  return {
    model: 'fraud',
    from: t0,
    to: t0 + 10 * H,
    generatedAt: t0 + 10 * H,
    drift: [],
    distributions: [],
    performance: [],
    retrain: [],
    ...over,
  };
}

/** The summary cards as [label, value] text (tags stripped). */
function cards(html: string): Array<[string, string]> {
  const block = html.slice(html.indexOf('<div class="cards">'), html.indexOf('<section'));
  return [...block.matchAll(/<div class="card[^"]*"><span>(.*?)<\/span><b>(.*?)<\/b><\/div>/g)].map((m) => [
    m[1]!.replace(/<[^>]+>/g, ''),
    m[2]!.replace(/<[^>]+>/g, ''),
  ]);
}
const cardOf = (html: string, prefix: string) => cards(html).filter(([label]) => label.startsWith(prefix));

describe('the summary cards (found by a review)', () => {
  // Four features measured for two versions, all drifted: the card read "8 / 4".
  const both = ['a', 'b', 'c', 'd'].flatMap((f) => [drift(f, 'v1', 3, true), drift(f, 'v2', 3, true)]);

  it('count distinct drifted features of the production version, in its latest window', () => {
    const html = renderReport(
      data({
        drift: [...both, drift('a', 'v2', 2, false), drift('e', 'v2', 2, true)],
        retrain: [stage(1, 'PRODUCTION', 'v2')],
      }),
    );
    expect(cardOf(html, 'features drifted')).toEqual([
      ['features drifted · production v2 (PSI, window 2025-01-01 03:00:00Z)', '4 / 4'],
    ]);
  });

  it('count per version when the production version is not known', () => {
    const html = renderReport(data({ drift: [...both, drift('e', 'v2', 3, false)] }));
    expect(cardOf(html, 'features drifted')).toEqual([
      ['features drifted · v1 (PSI, window 2025-01-01 03:00:00Z)', '4 / 4'],
      ['features drifted · v2 (PSI, window 2025-01-01 03:00:00Z)', '4 / 5'],
    ]);
  });

  it('name the version in production, not the last one the trainer PROMOTED into shadow and that was later rejected', () => {
    const staged = data({
      retrain: [
        stage(1, 'PRODUCTION', 'v1'),
        { time: t0 + 2 * H, source: 'model', kind: 'PROMOTED', version: 'v2', detail: 'offline gate passed' },
        stage(2, 'SHADOW', 'v2'),
        stage(4, 'REJECTED', 'v2'),
      ],
    });
    expect(cardOf(renderReport(staged), 'production version')).toEqual([['production version', 'v1']]);
    // A rolled-back production version hands production back to the one it replaced.
    const rolledBack = data({
      retrain: [stage(1, 'PRODUCTION', 'v2', 'v1'), stage(3, 'ROLLED_BACK', 'v2', 'v1')],
    });
    expect(cardOf(renderReport(rolledBack), 'production version')).toEqual([['production version', 'v1']]);
    // Without any stage transition (rollout `direct`), PROMOTED is production.
    const direct = data({
      retrain: [{ time: t0 + H, source: 'model', kind: 'PROMOTED', version: 'v3', detail: '' }],
    });
    expect(cardOf(renderReport(direct), 'production version')).toEqual([['production version', 'v3']]);
    // The reader's answer (every transition up to `to`) wins over the range's timeline.
    expect(cardOf(renderReport({ ...staged, productionVersion: 'v0' }), 'production version')).toEqual([
      ['production version', 'v0'],
    ]);
  });

  it('show the headline metric from the latest window that has it (the newest waits for its labels)', () => {
    const html = renderReport(
      data({
        performance: [perf('v1', 1, 0.9), perf('v1', 2, 0.85), perf('v1', 3, null), perf('v1', 4, null)],
      }),
    );
    expect(cardOf(html, 'roc_auc')).toEqual([
      ['roc_auc · v1 (latest window with enough labels, 2025-01-01 02:00:00Z)', '0.850'],
    ]);
  });

  it('show a realized metric only from a window the estimates section believes it (3 labels read "AUC 1.000"; found by a review)', () => {
    const few = (k: number, labeled: number, coverage: number, rocAuc: number): PerformancePoint => ({
      ...perf('v1', k, rocAuc),
      predictions: 1000,
      labeled,
      labelCoverage: coverage,
      estimated: { roc_auc: 0.62, accuracy: 0.7 },
    });
    // The newest window has 3 labels (coverage 0.003): the older one with 600 is the headline.
    const html = renderReport(data({ performance: [few(1, 600, 0.6, 0.81), few(2, 3, 0.003, 1)] }));
    expect(cardOf(html, 'roc_auc')).toEqual([
      ['roc_auc · v1 (latest window with enough labels, 2025-01-01 01:00:00Z)', '0.810'],
    ]);
    // No window with enough labels: the estimate, tagged as one, as the estimates table calls it.
    const none = renderReport(data({ performance: [few(1, 90, 0.6, 0.81), few(2, 3, 0.003, 1)] }));
    expect(cardOf(none, 'roc_auc')).toEqual([
      [
        'roc_auc · v1 (CBPE estimate, window 2025-01-01 02:00:00Z: no window has label coverage ≥ 0.5 and ≥ 100 labels)',
        '0.620 estimated',
      ],
    ]);
    // The rule is the report's (DRIFTLINE_JOINER_ALERT_MIN_SAMPLES / _REALIZED_COVERAGE given).
    expect(
      cardOf(
        renderReport(data({ performance: [few(2, 3, 0.003, 1)] }), { alertMinSamples: 3, realizedCoverage: 0.001 }),
        'roc_auc',
      ),
    ).toEqual([['roc_auc · v1 (latest window with enough labels, 2025-01-01 02:00:00Z)', '1.000']]);
    // Neither: a dash, not a number.
    const { estimated: _, ...bare } = few(2, 3, 0.003, 1);
    expect(cardOf(renderReport(data({ performance: [bare] })), 'roc_auc')).toEqual([
      ['roc_auc · v1 (no window has label coverage ≥ 0.5 and ≥ 100 labels, no estimate)', '—'],
    ]);
  });
});
