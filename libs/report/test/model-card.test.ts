import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  MAX_REPORT_FEATURES,
  type ModelCardData,
  modelCardFileName,
  renderModelCard,
  renderModelCardText,
} from '../src/index.js';

const card: ModelCardData = {
  model: 'fraud',
  version: 'v2',
  generatedAt: Date.UTC(2026, 11, 3),
  training: undefined,
  features: ['amount'],
  decision: undefined,
  reference: undefined,
  transitions: [
    {
      at: Date.UTC(2026, 11, 2),
      from: 'shadow',
      to: 'canary',
      decidedBy: 'operator:ana',
      reason: 'ok\nstage: v9 production → retired (forged)',
      detail: 'tab\there, escape \u001b[31m',
      evidence: '',
    },
  ],
  live: [],
  trainingDrift: [],
  stage: 'canary',
  notes: [],
};

describe('renderModelCardText', () => {
  it('keeps every field on its own line: control characters in a reason are written as \\uXXXX', () => {
    const text = renderModelCardText(card);
    const stageLines = text.split('\n').filter((l) => l.includes('→'));
    expect(stageLines).toHaveLength(1);
    expect(stageLines[0]).toContain('ok\\u000astage: v9 production → retired (forged)');
    expect(stageLines[0]).toContain('tab\\u0009here, escape \\u001b[31m');
    const controls = [...text].filter((ch) => ch !== '\n' && ((ch.codePointAt(0) ?? 0) < 0x20 || ch === '\u007f'));
    expect(controls).toEqual([]);
  });
});

describe('modelCardFileName', () => {
  it('names the card after the model and version, or after their hash when that is too long for a file system', () => {
    expect(modelCardFileName('fraud', 'v2')).toBe('model-card-fraud-v2.html');
    // One name per (model, version): `a` + `b-c` and `a-b` + `c` were both model-card-a-b-c.html (found by a review).
    expect(modelCardFileName('a', 'b-c')).toBe('model-card-a-b%2Dc.html');
    expect(modelCardFileName('a-b', 'c')).toBe('model-card-a%2Db-c.html');
    const dir = mkdtempSync(join(tmpdir(), 'cards-'));
    // Names as events allow them (256 characters): one of é (6 bytes percent-encoded), one of ASCII.
    const names: Array<[string, string]> = [
      ['fraud', 'é'.repeat(60)],
      ['m'.repeat(256), 'v'.repeat(256)],
      ['fraud', 'é'.repeat(61)],
    ];
    const files = names.map(([m, v]) => modelCardFileName(m, v));
    for (const f of files) writeFileSync(join(dir, f), 'card'); // ENAMETOOLONG before
    expect(new Set(files).size).toBe(3); // distinct names, distinct files
    expect(readdirSync(dir)).toHaveLength(3);
    expect(Math.max(...files.map((f) => Buffer.byteLength(f)))).toBeLessThanOrEqual(200);
  });
});

describe('model cards: found by a review', () => {
  const full: ModelCardData = {
    ...card,
    training: {
      requestId: 'req-1',
      challenged: 'v1',
      status: 'PROMOTED',
      reason: 'better',
      dataFrom: Date.UTC(2026, 11, 1),
      dataTo: Date.UTC(2026, 11, 2),
      rowsTrain: 4000,
      rowsHoldout: 1000,
      device: 'cpu',
      deviceReason: 'no GPU',
      metrics: { mae: 4e-5, current_mae: 0.123456, rmse: null, current_rmse: 2.5 },
      params: '{}',
      artifactUri: 'file:///m.json',
      referenceId: null,
      referenceUri: null,
      registeredAt: Date.UTC(2026, 11, 2),
    },
    transitions: [{ ...card.transitions[0]!, evidence: '{"alpha":1e-7,"n":812,"lower":0.0041}' }],
    live: [
      {
        segmentFeature: '',
        segment: '',
        windows: 3,
        predictions: 75,
        labeled: 60,
        metrics: { roc_auc: 0.75, mae: 4e-5, rmse: 2.6458 },
      },
      {
        segmentFeature: 'country',
        segment: 'fr\u202Eoc',
        windows: 1,
        predictions: 13,
        labeled: 8,
        metrics: { roc_auc: 0.7 },
      },
    ],
  };

  it('shows small values with significant digits, not as 0 (an evidence alpha of 1e-7, an MAE of 4e-5)', () => {
    const html = renderModelCard(full);
    expect(html).toContain('<bdi>alpha: 1e-7</bdi> · <bdi>n: 812</bdi> · <bdi>lower: 0.0041</bdi>');
    expect(html).toContain('<td><bdi>mae</bdi></td><td class="num">0.00004</td><td class="num">0.1235</td>');
    // A metric stored as NaN (read as null) is "—", not 0.
    expect(html).toContain('<td><bdi>rmse</bdi></td><td class="num">—</td><td class="num">2.5</td>');
    const text = renderModelCardText(full);
    expect(text).toContain('mae: 0.00004 vs 0.1235 (v1)');
    expect(text).toContain('mae 0.00004');
  });

  it("shows a transition's serving_from as a time, not as epoch milliseconds", () => {
    const evidence = JSON.stringify({ n: 40, serving_from: Date.UTC(2026, 0, 4, 3) });
    const html = renderModelCard({ ...full, transitions: [{ ...card.transitions[0]!, evidence }] });
    expect(html).toContain('<bdi>serving_from: 2026-01-04 03:00:00Z</bdi>');
    // Out of a Date's range: shown as the number it is, never a throw.
    const huge = JSON.stringify({ serving_from: 9e15 });
    expect(renderModelCard({ ...full, transitions: [{ ...card.transitions[0]!, evidence: huge }] })).toContain(
      '<bdi>serving_from: 9000000000000000</bdi>',
    );
  });

  it('labels ROC AUC and F1 as the mean of windows: not the pooled value', () => {
    const html = renderModelCard(full);
    expect(html).toContain('<th>roc_auc (mean of windows)</th><th>accuracy</th><th>f1 (mean of windows)</th>');
    expect(html).toContain('<th>rmse</th>');
    expect(renderModelCardText(full)).toContain('roc_auc 0.75 (mean of windows)');
  });

  it("has the report's Content-Security-Policy and isolates names, so a bidi override cannot reorder a cell", () => {
    const html = renderModelCard({ ...full, model: 'fraud\u202E' });
    expect(html).toContain(
      `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    );
    expect(html).toContain('<h1><bdi>fraud\u202E</bdi> <bdi>v2</bdi> — model card</h1>');
    // The tab's title too, as the report's (found by a review).
    expect(html).toContain('<title>\u2068fraud\u202E\u2069 \u2068v2\u2069 — model card</title>');
    expect(html).toContain('<td><bdi>country</bdi> = <bdi>fr\u202Eoc</bdi></td><td class="num">1</td>');
  });

  it(`shows at most ${MAX_REPORT_FEATURES} features and drift rows, and says how many more there are`, () => {
    // 100,000 features: a 60.8 MB card with 400,003 table rows and a 2.3 MB "features" line.
    const features = Array.from({ length: 20_000 }, (_, i) => `feature_${String(i).padStart(5, '0')}`);
    const wide: ModelCardData = {
      ...card,
      features,
      trainingDrift: features.flatMap((feature, i) =>
        ['psi', 'ks'].map((method) => ({ feature, method, windows: 10, drifted: i < 3 ? 5 : 0, maxStatistic: 0.1 })),
      ),
    };
    const html = renderModelCard(wide);
    expect(html.split('<span class="tag"><bdi>feature_').length - 1).toBe(MAX_REPORT_FEATURES);
    expect(html).toContain(`<h2>Features (20000)</h2>`);
    expect(html).toContain(`${20_000 - MAX_REPORT_FEATURES} more features not shown`);
    expect(html.split('<tr><td><bdi>feature_').length - 1).toBe(MAX_REPORT_FEATURES);
    expect(html).toContain('<tr><td><bdi>feature_00000</bdi></td><td>psi</td>'); // the most drifted first
    expect(html).toContain(`${40_000 - MAX_REPORT_FEATURES} more features · methods (the least drifted) not shown`);
    expect(html.length).toBeLessThan(250_000);
    const text = renderModelCardText(wide);
    const line = text.split('\n').find((l) => l.startsWith('features ('))!;
    expect(line).toMatch(
      new RegExp(`^features \\(20000\\): feature_00000, .*, … ${20_000 - MAX_REPORT_FEATURES} more not shown$`),
    );
    expect(line.split(', ').length).toBe(MAX_REPORT_FEATURES + 1);
    // A reader that read only the first ones says how many there are.
    const read: ModelCardData = { ...wide, features: features.slice(0, MAX_REPORT_FEATURES), featureCount: 20_000 };
    expect(renderModelCard(read)).toContain(`${20_000 - MAX_REPORT_FEATURES} more features not shown`);
    expect(renderModelCardText(read)).toContain(`features (20000): `);
  });
});
