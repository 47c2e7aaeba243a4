// The mixed table of the drift CLI benchmark: 40 columns of the shapes real feature tables have —
// 30 numeric (normal, lognormal, few-unique integers, uniform, bimodal, some with missing values) and
// 10 categorical (2 to 1,000 levels, skewed) — with a few columns shifted in the current file.
import { createWriteStream } from 'node:fs';
import { SeededRandom } from '@driftline/test-support/random';

type Cell = (rng: SeededRandom, drifted: boolean) => string;

const float = (x: number) => x.toFixed(6);

/** Missing with probability `share`, else `cell`. */
function missing(share: number, cell: Cell): Cell {
  return (rng, drifted) => (rng.uniform() < share ? '' : cell(rng, drifted));
}

/** An integer in [0, n) with weights ∝ 1/(k+1)^skew (a Zipf-like skew). */
function skewed(n: number, skew: number): (rng: SeededRandom) => number {
  const cdf: number[] = [];
  let total = 0;
  for (let k = 0; k < n; k++) {
    total += 1 / (k + 1) ** skew;
    cdf.push(total);
  }
  return (rng) => {
    const u = rng.uniform() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

function numericColumns(): Array<[string, Cell]> {
  const cols: Array<[string, Cell]> = [];
  // 8 normal: two clearly shifted, one shifted slightly (KS sees it at this size, a distance does not).
  const shifts = [0.25, 0.15, 0.02, 0, 0, 0, 0, 0];
  shifts.forEach((shift, i) => {
    cols.push([`normal_${i}`, (rng, d) => float(rng.normal() * (1 + i / 4) + i + (d ? shift * (1 + i / 4) : 0))]);
  });
  // 6 lognormal: one with a wider tail in the current file.
  for (let i = 0; i < 6; i++) {
    cols.push([`lognormal_${i}`, (rng, d) => float(Math.exp(rng.normal() * (d && i === 0 ? 0.6 : 0.5) + i / 5))]);
  }
  // 6 integers with few distinct values (3, 2, 5, 8, 20, ~30): categorical or numerical to Evidently.
  const levels = [3, 2, 5, 8, 20, 30];
  levels.forEach((n, i) => {
    const pick = skewed(n, 0.8);
    const pickShifted = skewed(n, 0.6);
    cols.push([`int_${n}`, (rng, d) => String(d && i % 2 === 0 ? pickShifted(rng) : pick(rng))]);
  });
  // 6 with missing values (5 % to 20 %): normal, lognormal, a few-unique integer.
  cols.push(['normal_missing_0', missing(0.05, (rng, d) => float(rng.normal() * 2 + (d ? 0.3 : 0)))]);
  cols.push(['normal_missing_1', missing(0.1, (rng) => float(rng.normal() * 3 - 1))]);
  cols.push(['normal_missing_2', missing(0.2, (rng) => float(rng.normal() + 10))]);
  cols.push(['lognormal_missing', missing(0.1, (rng) => float(Math.exp(rng.normal() * 0.7)))]);
  const four = skewed(4, 1);
  cols.push(['int_missing_4', missing(0.08, (rng) => String(four(rng)))]);
  cols.push(['int_missing_12', missing(0.15, (rng) => String(rng.int(12)))]);
  // 4 more shapes: uniform, bimodal, exponential, uniform integers 0..999.
  cols.push(['uniform', (rng, d) => float(rng.uniform() * (d ? 1.05 : 1))]);
  cols.push(['bimodal', (rng) => float(rng.normal() + (rng.uniform() < 0.3 ? 5 : 0))]);
  cols.push(['exponential', (rng) => float(-Math.log(1 - rng.uniform()) * 3)]);
  cols.push(['int_1000', (rng) => String(rng.int(1000))]);
  return cols;
}

function categoricalColumns(): Array<[string, Cell]> {
  const cardinalities = [2, 3, 5, 8, 12, 20, 50, 100, 300, 1000];
  return cardinalities.map((n, i) => {
    const pick = skewed(n, 1.1);
    const pickShifted = skewed(n, 1.0);
    // Every third one shifts; the first has missing values.
    const cell: Cell = (rng, d) => `c${i}_${(d && i % 3 === 0 ? pickShifted : pick)(rng)}`;
    return [`cat_${n}`, i === 0 ? missing(0.03, cell) : cell];
  });
}

/** Writes `rows` rows of the 40 columns; `drifted` shifts the columns meant to drift. */
export async function writeMixed(path: string, rows: number, seed: number, drifted: boolean): Promise<void> {
  const columns = [...numericColumns(), ...categoricalColumns()];
  const rng = new SeededRandom(seed);
  const out = createWriteStream(path);
  const write = (s: string) =>
    out.write(s) ? Promise.resolve() : new Promise<void>((resolve) => out.once('drain', () => resolve()));
  await write(`${columns.map(([name]) => name).join(',')}\n`);
  let chunk: string[] = [];
  for (let r = 0; r < rows; r++) {
    chunk.push(columns.map(([, cell]) => cell(rng, drifted)).join(','));
    if (chunk.length === 5000) {
      await write(`${chunk.join('\n')}\n`);
      chunk = [];
    }
  }
  if (chunk.length > 0) await write(`${chunk.join('\n')}\n`);
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}
