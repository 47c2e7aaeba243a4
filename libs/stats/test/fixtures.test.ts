import { readFileSync } from 'node:fs';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  buildCategoricalProfile,
  buildNumericProfile,
  chiSquareCategorical,
  chiSquareGoodnessOfFit,
  createSummary,
  jensenShannonCategorical,
  jensenShannonFromSummary,
  jensenShannonNumeric,
  ks2sampSorted,
  ksFromSummary,
  mergeSummaries,
  type NumericSummary,
  psiCategorical,
  psiFromSummary,
  psiNumeric,
  wassersteinSorted,
} from '../src/index.js';
import {
  type CategoricalSpec,
  generateCategorical,
  generateNumeric,
  type NumericSpec,
  sequentialSum,
} from './generate.js';

interface KsExpected {
  statistic: number;
  pvalue: number;
  method: 'exact' | 'asymp';
}
interface NumericExpected {
  ks: KsExpected;
  wasserstein: number;
  jensenshannon: number;
  quantile_bins: { bins: number; edges: number };
  psi_quantile: number;
  evidently_psi: number;
  evidently_psi_n_bins_10: number;
  evidently_report_psi?: number;
}
interface CategoricalExpected {
  chi2: { statistic: number; pvalue: number; dof: number };
  chi2_goodness_of_fit?: { statistic: number; pvalue: number };
  jensenshannon: number;
  psi_quantile: number;
  evidently_psi: number;
  evidently_report_psi?: number;
  labels: string[];
}
interface Checksum {
  first: number | string;
  last: number | string;
  sum?: number;
  n: number;
}
type Dataset =
  | {
      name: string;
      kind: 'numeric';
      reference: NumericSpec;
      current: NumericSpec;
      checksums: { reference: Checksum; current: Checksum };
      expected: NumericExpected;
    }
  | {
      name: string;
      kind: 'categorical';
      reference: CategoricalSpec;
      current: CategoricalSpec;
      checksums: { reference: Checksum; current: Checksum };
      expected: CategoricalExpected;
    };

const fixture = JSON.parse(readFileSync(new URL('./fixtures/expected.json', import.meta.url), 'utf8')) as {
  datasets: Dataset[];
};

/** Relative difference, with an absolute floor so exact zeros compare sensibly. */
function relErr(actual: number, expected: number): number {
  if (actual === expected) return 0;
  return Math.abs(actual - expected) / Math.max(Math.abs(expected), Number.MIN_VALUE);
}

const sorted = (a: Float64Array) => Float64Array.from(a).sort();

/** Splits values into `parts` summaries at random (seeded), then merges them in a shuffled order. */
function partitionedSummary(
  profile: ReturnType<typeof buildNumericProfile>,
  values: Float64Array,
  parts: number,
  seed: number,
): NumericSummary {
  const rng = new SeededRandom(seed);
  const summaries = Array.from({ length: parts }, () => createSummary(profile));
  for (let i = 0; i < values.length; i++) summaries[rng.nextU32() % parts]!.add(values[i]);
  for (let i = summaries.length - 1; i > 0; i--) {
    const j = rng.nextU32() % (i + 1);
    [summaries[i], summaries[j]] = [summaries[j]!, summaries[i]!];
  }
  return summaries.reduce((acc, s) => mergeSummaries(acc, s, profile));
}

const worst = {
  ksStat: 0,
  ksP: 0,
  wasserstein: 0,
  js: 0,
  psiEvidently: 0,
  psiQuantile: 0,
  chi2: 0,
  /** Largest exact D − grid D, over all datasets and over references of >= 10,000 rows. */
  summaryKsGap: 0,
  summaryKsGapLargeRef: 0,
  /** Largest stated per-window error bound at references of >= 10,000 rows. */
  summaryKsBoundLargeRef: 0,
};
// The million-row case does real work (2·10^6 generated values, exact statistics); generous
// timeouts keep it from flaking on a busy machine.
const HEAVY_TIMEOUT_MS = 60_000;

describe('fixtures from scipy and Evidently', () => {
  it('has at least 20 datasets spanning 30 to 1,000,000 rows', () => {
    expect(fixture.datasets.length).toBeGreaterThanOrEqual(20);
    const sizes = fixture.datasets.flatMap((d) => [d.reference.n, d.current.n]);
    expect(Math.min(...sizes)).toBe(30);
    expect(Math.max(...sizes)).toBe(1_000_000);
  });

  for (const ds of fixture.datasets) {
    if (ds.kind === 'numeric') {
      it(
        `${ds.name}: generator, KS, Wasserstein, JS, PSI, merged summaries`,
        () => {
          const ref = generateNumeric(ds.reference);
          const cur = generateNumeric(ds.current);
          // The generator must reproduce the Python samples bit for bit.
          for (const [values, sum] of [
            [ref, ds.checksums.reference],
            [cur, ds.checksums.current],
          ] as const) {
            expect(values.length).toBe(sum.n);
            expect(values[0]).toBe(sum.first);
            expect(values[values.length - 1]).toBe(sum.last);
            expect(sequentialSum(values)).toBe(sum.sum);
          }
          const e = ds.expected;
          const rs = sorted(ref);
          const cs = sorted(cur);

          const ks = ks2sampSorted(rs, cs);
          expect(ks.method).toBe(e.ks.method);
          const statErr = Math.abs(ks.statistic - e.ks.statistic);
          const pErr = relErr(ks.pValue, e.ks.pvalue);
          expect(statErr).toBeLessThanOrEqual(1e-12);
          expect(pErr).toBeLessThanOrEqual(1e-6);
          worst.ksStat = Math.max(worst.ksStat, statErr);
          worst.ksP = Math.max(worst.ksP, pErr);

          const w = wassersteinSorted(rs, cs);
          const wErr = Math.abs(w - e.wasserstein);
          expect(wErr).toBeLessThanOrEqual(1e-9);
          worst.wasserstein = Math.max(worst.wasserstein, wErr);

          const js = jensenShannonNumeric(rs, cs, { bins: e.quantile_bins.bins });
          const jsErr = Math.abs(js - e.jensenshannon);
          expect(jsErr).toBeLessThanOrEqual(1e-9);
          worst.js = Math.max(worst.js, jsErr);

          const psiQ = psiNumeric(rs, cs, { bins: e.quantile_bins.bins });
          expect(psiQ.edges?.length).toBe(e.quantile_bins.edges);
          const psiQErr = Math.abs(psiQ.value - e.psi_quantile);
          expect(psiQErr).toBeLessThanOrEqual(1e-9);
          worst.psiQuantile = Math.max(worst.psiQuantile, psiQErr);

          const psiE = psiNumeric(rs, cs, { binning: 'evidently', bins: 10 });
          const psiEErr = Math.abs(psiE.value - e.evidently_psi);
          expect(psiEErr).toBeLessThanOrEqual(1e-9);
          // Evidently ignores the requested bin count, and its Report computes the same value.
          expect(e.evidently_psi_n_bins_10).toBe(e.evidently_psi);
          if (e.evidently_report_psi !== undefined) expect(e.evidently_report_psi).toBe(e.evidently_psi);
          worst.psiEvidently = Math.max(worst.psiEvidently, psiEErr);

          // Streaming path: profile of the reference, current split over partitions and merged.
          const profile = buildNumericProfile(rs, { bins: e.quantile_bins.bins });
          // Raw (unsnapped) D: ks2samp snaps exact-mode D to h/lcm.
          const exactD = ks.method === 'asymp' ? ks.statistic : ks2sampSorted(rs, cs, 'asymp').statistic;
          const big = ref.length + cur.length > 300_000;
          for (const parts of big ? [5] : [1, 3, 7]) {
            const merged = partitionedSummary(profile, cur, parts, 1000 + parts);
            const sks = ksFromSummary(profile, merged);
            expect(sks.statistic).toBeLessThanOrEqual(exactD + 1e-12);
            expect(exactD).toBeLessThanOrEqual(sks.upperBound + 1e-12);
            expect(sks.errorBound).toBeLessThanOrEqual(profile.ksBound + 1e-15);
            worst.summaryKsGap = Math.max(worst.summaryKsGap, exactD - sks.statistic);
            if (profile.n >= 10_000) {
              worst.summaryKsGapLargeRef = Math.max(worst.summaryKsGapLargeRef, exactD - sks.statistic);
              worst.summaryKsBoundLargeRef = Math.max(worst.summaryKsBoundLargeRef, sks.errorBound);
            }
            // Coarse edges are cut points, so streaming PSI and JS equal the raw-data values.
            expect(psiFromSummary(profile, merged).value).toBeCloseTo(psiQ.value, 12);
            expect(jensenShannonFromSummary(profile, merged)).toBeCloseTo(js, 12);
          }
          if (profile.n >= 10_000) expect(profile.ksBound).toBeLessThanOrEqual(0.002);
        },
        HEAVY_TIMEOUT_MS,
      );
    } else {
      it(
        `${ds.name}: generator, chi-square, JS, PSI`,
        () => {
          const ref = generateCategorical(ds.reference);
          const cur = generateCategorical(ds.current);
          expect([ref[0], ref[ref.length - 1], ref.length]).toEqual([
            ds.checksums.reference.first,
            ds.checksums.reference.last,
            ds.checksums.reference.n,
          ]);
          expect([cur[0], cur[cur.length - 1], cur.length]).toEqual([
            ds.checksums.current.first,
            ds.checksums.current.last,
            ds.checksums.current.n,
          ]);
          const e = ds.expected;
          const chi = chiSquareCategorical(ref, cur);
          expect(chi.dof).toBe(e.chi2.dof);
          expect(relErr(chi.statistic, e.chi2.statistic)).toBeLessThanOrEqual(1e-12);
          const chiErr = relErr(chi.pValue, e.chi2.pvalue);
          expect(chiErr).toBeLessThanOrEqual(1e-9);
          worst.chi2 = Math.max(worst.chi2, chiErr);
          if (e.chi2_goodness_of_fit) {
            const psiRef = psiCategorical(ref, cur);
            const labels = psiRef.labels ?? [];
            const refCounts = labels.slice(0, -1).map((l) => ref.filter((v) => v === l).length);
            const curCounts = labels.slice(0, -1).map((l) => cur.filter((v) => v === l).length);
            const gof = chiSquareGoodnessOfFit(curCounts, refCounts);
            expect(relErr(gof.statistic, e.chi2_goodness_of_fit.statistic)).toBeLessThanOrEqual(1e-12);
            expect(relErr(gof.pValue, e.chi2_goodness_of_fit.pvalue)).toBeLessThanOrEqual(1e-9);
          }
          const js = jensenShannonCategorical(ref, cur);
          expect(Math.abs(js - e.jensenshannon)).toBeLessThanOrEqual(1e-9);
          const psiQ = psiCategorical(ref, cur);
          expect(psiQ.labels).toEqual(e.labels);
          expect(Math.abs(psiQ.value - e.psi_quantile)).toBeLessThanOrEqual(1e-9);
          const psiE = psiCategorical(ref, cur, { binning: 'evidently' });
          const psiEErr = Math.abs(psiE.value - e.evidently_psi);
          expect(psiEErr).toBeLessThanOrEqual(1e-9);
          worst.psiEvidently = Math.max(worst.psiEvidently, psiEErr);

          const profile = buildCategoricalProfile(ref);
          const summary = createSummary(profile).addAll(cur);
          expect(summary.counts.reduce((a, b) => a + b, 0)).toBe(cur.length);
        },
        HEAVY_TIMEOUT_MS,
      );
    }
  }

  it('reports the worst errors', () => {
    // Printed so the tolerances actually achieved are visible in the test log.
    console.info('stats fixture max errors', JSON.stringify(worst));
  });
});
