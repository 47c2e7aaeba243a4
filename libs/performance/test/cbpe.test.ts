import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  addScore,
  CALIBRATION_FORMAT,
  calibrate,
  ESTIMATED_METRICS,
  emptyScoreHistogram,
  estimateCbpe,
  estimateCbpeFromHistogram,
  fitIsotonicCalibration,
  GRID_SLOT_OFFSET,
  identityCalibration,
  legacyScoreSlot,
  mergeScoreHistograms,
  OUT_OF_RANGE_SLOT,
  parseCalibrationMap,
  SCORE_BINS,
  SCORE_SLOTS,
  scoreHistogram,
  scoreSlot,
  slotRange,
} from '../src/cbpe.js';
import { classificationMetrics, MAX_OUT_OF_RANGE_SHARE } from '../src/metrics.js';

interface Fixture {
  threshold: number;
  chunk_size: number;
  needs_calibration: boolean;
  reference: { scores: number[]; labels: string };
  analysis: { scores: number[]; labels: string };
  nannyml: Record<(typeof ESTIMATED_METRICS)[number], number[]>;
  isotonic_probe: { x: number[]; y: number[] };
}

// Written by scripts/make_cbpe_fixture.sh (NannyML 0.13.1's CBPE on seeded data, two shifted chunks).
const fixture = JSON.parse(readFileSync(new URL('./fixtures/nannyml-cbpe.json', import.meta.url), 'utf8')) as Fixture;
const labels = (s: string) => Array.from(s, Number);

/**
 * Tolerances on the largest per-chunk difference from NannyML. Exact mode: NannyML rounds its
 * cumulative TP/FP to 5 decimals before the ROC trapezoid, nothing else differs. Histogram mode
 * adds the grid's error (a score stands for its bin's midpoint; ties inside a bin count one half).
 */
const EXACT_TOLERANCE = 1e-6;
const HISTOGRAM_TOLERANCE = 1e-3;

function chunks() {
  const ys = labels(fixture.analysis.labels);
  const out: Array<{ scores: number[]; labels: number[] }> = [];
  for (let from = 0; from < fixture.analysis.scores.length; from += fixture.chunk_size) {
    out.push({
      scores: fixture.analysis.scores.slice(from, from + fixture.chunk_size),
      labels: ys.slice(from, from + fixture.chunk_size),
    });
  }
  return out;
}

const map = fixture.needs_calibration
  ? fitIsotonicCalibration(fixture.reference.scores, labels(fixture.reference.labels))
  : identityCalibration();

describe('isotonic calibration (scikit-learn IsotonicRegression, out_of_bounds=clip)', () => {
  it('predicts what sklearn predicts on a probe grid, inside and outside the fitted range', () => {
    const { x, y } = fixture.isotonic_probe;
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(calibrate(map, x[i]!) - y[i]!));
    expect(worst).toBeLessThan(1e-12);
  });

  it('pools tied scores and keeps the knots where the fit changes', () => {
    const m = fitIsotonicCalibration([0.1, 0.1, 0.2, 0.3, 0.4, 0.9], [0, 1, 0, 1, 0, 1]);
    // Pools: {0.1: .5, 0.2: 0} violate → .333 over 3 rows; {0.3: 1, 0.4: 0} → .5; 0.9: 1.
    expect(m.x).toEqual([0.1, 0.2, 0.3, 0.4, 0.9]);
    expect(m.y.map((v) => Number(v.toFixed(6)))).toEqual([0.333333, 0.333333, 0.5, 0.5, 1]);
    expect(calibrate(m, 0.85)).toBeCloseTo(0.5 + (0.5 * 0.45) / 0.5, 12);
    expect(calibrate(m, -1)).toBeCloseTo(1 / 3, 12);
    expect(calibrate(m, 2)).toBe(1);
  });

  it('thins a large map to the point cap, monotone, with its error recorded', () => {
    const n = 20_000;
    const s = Array.from({ length: n }, (_, i) => i / n);
    const y = s.map((v, i) => (((i * 2654435761) % 1000) / 1000 < v ? 1 : 0));
    const full = fitIsotonicCalibration(s, y, 1_000_000);
    const thin = fitIsotonicCalibration(s, y, 64);
    expect(thin.x.length).toBe(64);
    expect(full.x.length).toBeGreaterThan(64);
    for (let i = 1; i < thin.y.length; i++) expect(thin.y[i]!).toBeGreaterThanOrEqual(thin.y[i - 1]!);
    expect(thin.thinningError).toBeGreaterThan(0);
    expect(thin.thinningError).toBeLessThan(0.2);
  });

  it('round-trips through JSON and refuses a malformed map, naming the field', () => {
    expect(parseCalibrationMap(JSON.parse(JSON.stringify(map)), 'f')).toEqual(map);
    expect(() => parseCalibrationMap({ ...map, y: [...map.y].reverse() }, 'calibration_maps[m/v]')).toThrow(
      /calibration_maps\[m\/v\].*non-decreasing/,
    );
    expect(() => parseCalibrationMap({ format: 'x' }, 'f')).toThrow(new RegExp(CALIBRATION_FORMAT.replace('.', '\\.')));
    expect(() => fitIsotonicCalibration([0.1], [2])).toThrow(/label 2/);
  });
});

describe('CBPE against NannyML on the same data', () => {
  const all = chunks();

  it('exact mode: every metric within 1e-6 of NannyML, per chunk', () => {
    const diffs: Record<string, number> = {};
    all.forEach((c, k) => {
      const e = estimateCbpe(c.scores, map, fixture.threshold);
      for (const m of ESTIMATED_METRICS) {
        const d = Math.abs((e[m] as number) - fixture.nannyml[m][k]!);
        diffs[m] = Math.max(diffs[m] ?? 0, d);
      }
    });
    console.log(JSON.stringify({ cbpe_vs_nannyml_exact_max_abs_diff: diffs }));
    for (const m of ESTIMATED_METRICS) expect(diffs[m]!, m).toBeLessThan(EXACT_TOLERANCE);
  });

  it(`histogram mode (${SCORE_BINS} bins): ROC AUC and accuracy within ${HISTOGRAM_TOLERANCE} of NannyML, per chunk`, () => {
    const diffs: Record<string, number> = {};
    all.forEach((c, k) => {
      const e = estimateCbpeFromHistogram(scoreHistogram(c.scores, fixture.threshold), map, fixture.threshold);
      for (const m of ESTIMATED_METRICS) {
        diffs[m] = Math.max(diffs[m] ?? 0, Math.abs((e[m] as number) - fixture.nannyml[m][k]!));
      }
    });
    console.log(JSON.stringify({ cbpe_vs_nannyml_histogram_max_abs_diff: diffs }));
    expect(diffs.roc_auc!).toBeLessThan(HISTOGRAM_TOLERANCE);
    expect(diffs.accuracy!).toBeLessThan(HISTOGRAM_TOLERANCE);
  });

  it('the estimate follows the realized metric on shifted chunks (what CBPE is for)', () => {
    // The last chunk's covariate shift drops ROC AUC by ~0.08 and recall to ~0.16: the estimate
    // must see both moves without labels.
    const last = all[all.length - 1]!;
    const first = all[0]!;
    const realized = classificationMetrics(last.labels, last.scores, fixture.threshold);
    const estimate = estimateCbpe(last.scores, map, fixture.threshold);
    expect(Math.abs(estimate.roc_auc! - realized.roc_auc!)).toBeLessThan(0.03);
    expect(Math.abs(estimate.recall! - realized.recall!)).toBeLessThan(0.05);
    expect(estimateCbpe(first.scores, map, fixture.threshold).roc_auc! - estimate.roc_auc!).toBeGreaterThan(0.05);
  });

  it('without calibration an over-confident model looks better than it is', () => {
    const c = all[0]!;
    const raw = estimateCbpe(c.scores, identityCalibration(), fixture.threshold);
    const calibrated = estimateCbpe(c.scores, map, fixture.threshold);
    expect(raw.accuracy! - calibrated.accuracy!).toBeGreaterThan(0.02);
  });
});

describe('score histogram', () => {
  it('splits the bin holding the threshold so every slot is on one side of it', () => {
    const t = 0.4235;
    const lowSlot = scoreSlot(t - 1e-9, t);
    const highSlot = scoreSlot(t + 1e-9, t);
    // The split slot is the last one; the bins of the current grid start at GRID_SLOT_OFFSET.
    expect(highSlot).toBe(SCORE_SLOTS - 1);
    expect(lowSlot).toBeLessThan(SCORE_SLOTS - 1);
    expect(lowSlot).toBeGreaterThanOrEqual(GRID_SLOT_OFFSET);
    const low = slotRange(lowSlot, t);
    const high = slotRange(highSlot, t);
    expect([low.high, low.positive, high.low, high.positive]).toEqual([t, false, t, true]);
    expect(low.low).toBeLessThan(t);
    expect(high.high).toBeGreaterThan(t);
    for (const s of [-3, 7, -1e-5, 1 + 1e-5, Number.NaN]) expect(scoreSlot(s, t), String(s)).toBe(OUT_OF_RANGE_SLOT);
    // Every score lands in a slot whose range holds it (edges included), on the right side.
    for (const s of [0, 1e-300, 1e-20, 1e-9, 1e-6, 0.01, 0.3, 0.42349, 0.4235, 0.5, 0.77, 0.999999, 1 - 2 ** -53, 1]) {
      const r = slotRange(scoreSlot(s, t), t);
      expect(s >= r.low && (s < r.high || s === 1), String(s)).toBe(true);
      expect(r.positive).toBe(s >= t);
    }
    // On a grid edge (0.5 is logit 0, an edge) the lower part is empty: 0.5 lands in the split slot.
    expect(scoreSlot(0.5, 0.5)).toBe(SCORE_SLOTS - 1);
  });

  it('takes a score within 1e-6 of [0, 1] as a probability, clipped: float rounding voids no estimate (found by reviews)', () => {
    const h = emptyScoreHistogram();
    addScore(h, 1 + 2 ** -52, 0.5);
    const rounded = 0.56 + 0.34 + 0.1;
    expect(rounded).toBe(1.0000000000000002);
    addScore(h, rounded, 0.5);
    // A float32 model's class probabilities summed in float32: one float32 step above 1 (1.19e-7).
    const f32 = Math.fround(1 + 2 ** -23);
    expect(f32).toBe(1.0000001192092896);
    addScore(h, f32, 0.5);
    addScore(h, -1e-12, 0.5);
    expect(h.counts[OUT_OF_RANGE_SLOT]).toBe(0);
    expect(h.counts[scoreSlot(1, 0.5)]).toBe(3);
    expect(h.sums[scoreSlot(1, 0.5)]).toBe(3);
    expect(h.counts[scoreSlot(0, 0.5)]).toBe(1);
    expect(h.sums[scoreSlot(0, 0.5)]).toBe(0);
    const c = chunks()[0]!;
    const withRounding = scoreHistogram([...c.scores, rounded], 0.5);
    expect(estimateCbpeFromHistogram(withRounding, map, 0.5).accuracy).not.toBeNull();
    expect(scoreSlot(1 + 2e-6, 0.5)).toBe(OUT_OF_RANGE_SLOT);
  });

  it('estimates nothing from scores outside [0, 1], where exact mode works on the raw scores (found by a review)', () => {
    // The fixture's model as margins (logits), deciding at 0: the same decisions and calibrated
    // probabilities as its scores at 0.5 (isotonic calibration follows any monotone transform).
    const logit = (s: number) => Math.log(s / (1 - s));
    const marginMap = fitIsotonicCalibration(fixture.reference.scores.map(logit), labels(fixture.reference.labels));
    const c = chunks()[0]!;
    const margins = c.scores.map(logit);
    const exact = estimateCbpe(margins, marginMap, 0);
    expect(exact.accuracy).toBeCloseTo(estimateCbpe(c.scores, map, 0.5).accuracy!, 6);
    // The histogram had clipped the margins to 0 and 1 (accuracy 0.271 where exact said 0.944):
    // now it counts them apart and estimates nothing, over every scored prediction.
    const h = scoreHistogram(margins, 0);
    expect(h.counts[OUT_OF_RANGE_SLOT]).toBe(margins.filter((m) => m < 0 || m > 1).length);
    expect(estimateCbpeFromHistogram(h, marginMap, 0)).toMatchObject({
      n: margins.length,
      accuracy: null,
      precision: null,
      recall: null,
      f1: null,
      roc_auc: null,
    });
    expect(estimateCbpeFromHistogram(scoreHistogram(c.scores, 0.5), map, 0.5).accuracy).toBeCloseTo(
      estimateCbpe(c.scores, map, 0.5).accuracy!,
      3,
    );
  });

  it('leaves a few scores outside [0, 1] out of the estimate; more than MAX_OUT_OF_RANGE_SHARE void it (found by a review)', () => {
    // 10,000 scores of a weak calibrated model, then one 1.5: the estimate had been null.
    let seed = 1;
    const rnd = () => {
      seed = (seed * 16_807) % 2_147_483_647;
      return seed / 2_147_483_647;
    };
    const scores = Array.from({ length: 10_000 }, () => 0.35 + 0.3 * rnd());
    const clean = estimateCbpeFromHistogram(scoreHistogram(scores, 0.5), identityCalibration(), 0.5);
    const one = estimateCbpeFromHistogram(scoreHistogram([...scores, 1.5], 0.5), identityCalibration(), 0.5);
    expect(one.accuracy).not.toBeNull();
    expect(one).toEqual(clean); // the same estimate, over the 10,000 in range (n too)
    expect(one.n).toBe(10_000);
    // Up to 1% of the window (101 of 10,101): estimated; one more, and the model emits no probabilities.
    expect(MAX_OUT_OF_RANGE_SHARE).toBe(0.01);
    const bad = (k: number) => [...scores, ...Array.from({ length: k }, (_, i) => (i % 2 === 0 ? 2.5 : Number.NaN))];
    expect(estimateCbpeFromHistogram(scoreHistogram(bad(101), 0.5), identityCalibration(), 0.5)).toEqual(clean);
    expect(estimateCbpeFromHistogram(scoreHistogram(bad(102), 0.5), identityCalibration(), 0.5)).toMatchObject({
      n: 10_102,
      accuracy: null,
      roc_auc: null,
    });
  });

  it('merges by addition: two halves give the estimate of the whole', () => {
    const c = chunks()[3]!;
    const a = scoreHistogram(c.scores.slice(0, 700), 0.5);
    const b = scoreHistogram(c.scores.slice(700), 0.5);
    const merged = mergeScoreHistograms(a, b);
    expect(merged.counts).toHaveLength(SCORE_SLOTS);
    // Equal up to the order of the float additions of the slot sums.
    const whole = estimateCbpeFromHistogram(scoreHistogram(c.scores, 0.5), map, 0.5);
    const halves = estimateCbpeFromHistogram(merged, map, 0.5);
    expect(halves.n).toBe(whole.n);
    for (const k of ['tp', 'fp', 'tn', 'fn', ...ESTIMATED_METRICS] as const) {
      expect(Math.abs((halves[k] as number) - (whole[k] as number)), k).toBeLessThan(1e-12 * Math.max(1, whole.n));
    }
  });

  it('confusion counts are expectations: they sum to n, decisions at the threshold', () => {
    const e = estimateCbpe([0.9, 0.2, 0.6], identityCalibration(), 0.5);
    expect(e.tp).toBeCloseTo(1.5, 12);
    expect(e.fp).toBeCloseTo(0.5, 12);
    expect(e.fn).toBeCloseTo(0.2, 12);
    expect(e.tn).toBeCloseTo(0.8, 12);
    expect(e.accuracy).toBeCloseTo(2.3 / 3, 12);
    expect(estimateCbpe([], map, 0.5).roc_auc).toBeNull();
    expect(estimateCbpe([1, 1], identityCalibration(), 0.5).roc_auc).toBeNull();
  });
});

interface SaturatedFixture {
  threshold: number;
  cases: Array<{
    name: string;
    needs_calibration: boolean;
    reference: { scores: number[]; labels: string };
    analysis: { scores: number[] };
    nannyml: Record<'roc_auc' | 'accuracy' | 'f1', number>;
    isotonic_predict: number[];
    exactly_0_or_1: number;
  }>;
}

// Written by `scripts/make_cbpe_fixture.sh saturated`: logits stretched 8x (float64) and 15x (float32).
const saturated = JSON.parse(
  readFileSync(new URL('./fixtures/nannyml-cbpe-saturated.json', import.meta.url), 'utf8'),
) as SaturatedFixture;

describe('CBPE on over-confident, saturated scores (NannyML and scikit-learn on the same data; found by a review)', () => {
  const fitted = saturated.cases.map((c) => ({
    c,
    map: fitIsotonicCalibration(c.reference.scores, labels(c.reference.labels)),
  }));

  it('calibrates as scikit-learn: reference scores closer than 1e-15 are pooled', () => {
    for (const { c, map: m } of fitted) {
      let worst = 0;
      c.analysis.scores.forEach((s, i) => {
        worst = Math.max(worst, Math.abs(calibrate(m, s) - c.isotonic_predict[i]!));
      });
      expect(worst, c.name).toBeLessThan(1e-12);
    }
    // Pooled at the run's smallest score, as _make_unique does: 0.1 and 0.1 + 5e-16 are one group.
    const m = fitIsotonicCalibration([0.1, 0.1 + 5e-16, 0.1 + 2e-15, 0.5], [1, 0, 0, 1]);
    expect(m.x).toEqual([0.1, 0.1 + 2e-15, 0.5]);
    expect(m.y).toEqual([1 / 3, 1 / 3, 1]);
  });

  it('exact mode: ROC AUC, accuracy and F1 within 1e-6 of NannyML', () => {
    for (const { c, map: m } of fitted) {
      expect(c.needs_calibration).toBe(true);
      const e = estimateCbpe(c.analysis.scores, m, saturated.threshold);
      for (const k of ['roc_auc', 'accuracy', 'f1'] as const) {
        expect(Math.abs(e[k]! - c.nannyml[k]), `${c.name} ${k}`).toBeLessThan(EXACT_TOLERANCE);
      }
    }
  });

  it('histogram mode (what is stored): within 1e-4 of NannyML and of exact mode', () => {
    // The first grid (1,000 logit bins over 1e-6 … 1 − 1e-6) was 0.020 (k8) and 0.062 (k15-f32)
    // of ROC AUC under NannyML: every score beyond was one end bin, one mean score, all tied.
    const diffs: Record<string, number> = {};
    for (const { c, map: m } of fitted) {
      const h = estimateCbpeFromHistogram(
        scoreHistogram(c.analysis.scores, saturated.threshold),
        m,
        saturated.threshold,
      );
      const e = estimateCbpe(c.analysis.scores, m, saturated.threshold);
      for (const k of ['roc_auc', 'accuracy', 'f1'] as const) {
        diffs[`${c.name} ${k}`] = Math.abs(h[k]! - c.nannyml[k]);
        expect(Math.abs(h[k]! - c.nannyml[k]), `${c.name} ${k} vs NannyML`).toBeLessThan(1e-4);
        expect(Math.abs(h[k]! - e[k]!), `${c.name} ${k} vs exact`).toBeLessThan(1e-4);
      }
    }
    console.log(JSON.stringify({ cbpe_saturated_histogram_vs_nannyml: diffs }));
  });

  it('scores exactly 0 and 1 have slots of their own', () => {
    const k15 = saturated.cases.find((c) => c.name === 'k15-f32')!;
    expect(k15.exactly_0_or_1).toBeGreaterThan(100);
    for (const t of [0.5, 0.9]) {
      expect(scoreSlot(0, t)).not.toBe(scoreSlot(Number.MIN_VALUE, t));
      expect(scoreSlot(1, t)).not.toBe(scoreSlot(1 - 2 ** -53, t));
      expect(slotRange(scoreSlot(0, t), t)).toMatchObject({ low: 0, high: Number.MIN_VALUE, positive: false });
      expect(slotRange(scoreSlot(1, t), t)).toMatchObject({ low: 1, high: 1, positive: true });
    }
    // A map that tells 0 from the smallest positive score: each slot keeps its own probability.
    const m = parseCalibrationMap(
      { format: CALIBRATION_FORMAT, method: 'isotonic', x: [0, 1e-300, 1], y: [0, 0.5, 1], n: 3, positives: 1 },
      'f',
    );
    const e = estimateCbpeFromHistogram(scoreHistogram([0, 1e-300], 0.5), m, 0.5);
    expect([e.tn, e.fn]).toEqual([1.5, 0.5]);
  });
});

describe('score histograms stored on the first grid (0610 … 0650 rows, Redis tallies in flight)', () => {
  const legacyHistogram = (scores: number[], t: number) => {
    const h = emptyScoreHistogram();
    for (const s of scores) {
      const slot = legacyScoreSlot(s, t);
      h.counts[slot]! += 1;
      h.sums[slot]! += s;
    }
    return h;
  };

  it('are read on their own grid: the estimate the first grid gave', () => {
    const c = chunks()[0]!;
    const h = legacyHistogram(c.scores, 0.5);
    for (let slot = GRID_SLOT_OFFSET; slot < SCORE_SLOTS; slot++) expect(h.counts[slot]).toBe(0);
    // What the code of 0610 … 0650 estimated from this chunk's histogram.
    const e = estimateCbpeFromHistogram(h, map, 0.5);
    expect(e.n).toBe(2000);
    expect(e.roc_auc).toBeCloseTo(0.8239277572750112, 12);
    expect(e.accuracy).toBeCloseTo(0.7463779013719601, 12);
    expect(e.f1).toBeCloseTo(0.7167373787748613, 12);
    expect(legacyScoreSlot(2, 0.5)).toBe(OUT_OF_RANGE_SLOT);
  });

  it('a window written across the upgrade (rows of both grids) sums to the estimate of its scores', () => {
    for (const t of [0.5, 0.9]) {
      const c = chunks()[3]!;
      const old = legacyHistogram(c.scores.slice(0, 900), t);
      const current = scoreHistogram(c.scores.slice(900), t);
      const e = estimateCbpeFromHistogram(mergeScoreHistograms(old, current), map, t);
      const exact = estimateCbpe(c.scores, map, t);
      expect(e.n).toBe(c.scores.length);
      for (const k of ['roc_auc', 'accuracy', 'f1'] as const) {
        expect(Math.abs(e[k]! - exact[k]!), `${t} ${k}`).toBeLessThan(1e-3);
      }
    }
  });
});
