// Windows whose metrics come from a sample of their labels (performance_windows.sampled_labels > 0:
// more than the label-joiner's DRIFTLINE_JOINER_MAX_WINDOW_ROWS) are marked where live performance
// is read — the report's tables, its performance section and headline card, the model card's live
// table and text — with one line saying what the mark means; exact windows carry no mark.
import { describe, expect, it } from 'vitest';
import {
  type ModelCardData,
  type PerformancePoint,
  type ReportData,
  renderModelCard,
  renderModelCardText,
  renderReport,
} from '../src/index.js';

const H = 3_600_000;
const t0 = Date.UTC(2025, 0, 1);

const window = (k: number, labeled: number, sampled?: number): PerformancePoint => ({
  version: 'v1',
  windowStart: t0 + k * H,
  task: 'binary',
  predictions: labeled + 100,
  labeled,
  labelCoverage: labeled / (labeled + 100),
  metrics: { roc_auc: 0.83, accuracy: 0.75 },
  estimated: { roc_auc: 0.82, accuracy: 0.74 },
  scored: labeled + 100,
  business: { valuedLabels: labeled, valueCaught: 10, valueMissed: 2, falseAlarmCost: 1, net: 9 },
  ...(sampled === undefined ? {} : { sampled }),
});

function report(performance: PerformancePoint[]): string {
  const data: ReportData = {
    model: 'm',
    from: t0,
    to: t0 + 4 * H,
    generatedAt: t0 + 5 * H,
    drift: [],
    distributions: [],
    performance,
    retrain: [],
  };
  return renderReport(data);
}

const section = (html: string, id: string) => {
  const start = html.indexOf(`<section id="${id}">`);
  return start === -1 ? '' : html.slice(start, html.indexOf('</section>', start));
};
/** The rows of a section's table as text, tags stripped. */
const rows = (html: string) =>
  [...html.matchAll(/<tr><td>(.*?)<\/tr>/g)].map((m) => m[1]!.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' '));
const EXPLANATION = 'DRIFTLINE_JOINER_MAX_WINDOW_ROWS';

describe('sampled windows in the report', () => {
  // The label-joiner's README figures: 996,377 of 2,000,000 labels; an exact window beside it,
  // and one sampled with 0 (older rows, before 0680) as the exact window it is.
  const html = report([window(0, 800), window(1, 2_000_000, 996_377), window(2, 900, 0)]);

  it('marks the sampled window in the estimates and business tables, "sampled N of M labels", with one line saying why', () => {
    for (const id of ['estimates', 'business']) {
      const s = section(html, id);
      const marked = rows(s).filter((r) => r.includes('sampled'));
      expect(marked, id).toHaveLength(1);
      expect(marked[0], id).toContain('2025-01-01 01:00');
      expect(marked[0], id).toContain('sampled 996377 of 2000000 labels');
      expect(s.split(EXPLANATION).length - 1, id).toBe(1);
    }
  });

  it('says in the performance section how many windows are sampled, and marks the headline card when its window is', () => {
    const performance = section(html, 'performance');
    expect(performance).toContain('1 of 3 windows (per version) sampled: 996377 of their 2000000 labels');
    expect(performance).toContain(EXPLANATION);
    const latestSampled = report([window(0, 800), window(1, 2_000_000, 996_377)]);
    const head = latestSampled.slice(0, latestSampled.indexOf('<section'));
    expect(head).toContain('latest window with enough labels, 2025-01-01 01:00');
    expect(head).toContain('sampled 996377 of 2000000 labels');
  });

  it('marks nothing when every window was computed from all its labels', () => {
    const exact = report([window(0, 800), window(1, 900, 0)]);
    expect(exact).not.toContain('class="tag sampled"');
    expect(exact).not.toContain('sampled 0 of');
    expect(exact).not.toContain('(per version) sampled');
    expect(exact).not.toContain(EXPLANATION);
  });
});

describe('sampled windows in the model card', () => {
  const card: ModelCardData = {
    model: 'fraud',
    version: 'v2',
    generatedAt: Date.UTC(2026, 11, 3),
    training: undefined,
    features: ['amount'],
    decision: undefined,
    reference: undefined,
    transitions: [],
    live: [
      {
        segmentFeature: '',
        segment: '',
        windows: 12,
        predictions: 3_400_000,
        labeled: 3_300_000,
        metrics: { roc_auc: 0.83 },
        sampled: { windows: 2, labels: 1_996_377, of: 3_200_000 },
      },
      {
        segmentFeature: 'country',
        segment: 'pt',
        windows: 12,
        predictions: 1_000,
        labeled: 900,
        metrics: { roc_auc: 0.8 },
        sampled: { windows: 0, labels: 0, of: 0 },
      },
    ],
    trainingDrift: [],
    stage: 'production',
    notes: [],
  };

  it('marks the live rows with sampled windows, "k sampled: N of M labels", with one line saying why', () => {
    const html = renderModelCard(card);
    const table = html.slice(html.indexOf('Live performance'), html.indexOf('Drift at training time'));
    const lines = rows(table);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('overall');
    expect(lines[0]).toContain('12 2 sampled: 1996377 of 3200000 labels');
    expect(lines[1]).not.toContain('sampled');
    expect(table.split(EXPLANATION).length - 1).toBe(1);

    const text = renderModelCardText(card);
    expect(text).toContain('in 12 windows (2 sampled: 1996377 of 3200000 labels) ·');
    expect(text.split(EXPLANATION).length - 1).toBe(1);
  });

  it('marks nothing when no window was sampled (or the reader did not say)', () => {
    const exact: ModelCardData = { ...card, live: card.live.map(({ sampled: _, ...l }) => l) };
    expect(renderModelCard(exact)).not.toContain('class="tag sampled"');
    expect(renderModelCard(exact)).not.toContain(EXPLANATION);
    expect(renderModelCardText(exact)).not.toContain('sampled');
  });
});
