/**
 * Fast slot lookup on a profile's cut grid for the per-event hot path. A plain binary search over
 * ~1000 cuts costs ten unpredictable branches per value; instead an equal-width bucket table over
 * [first cut, last cut] narrows the search to the few cuts inside one bucket, and a binary search
 * finishes within that range (so heavy-tailed grids, where many cuts share a bucket, stay
 * logarithmic rather than linear).
 */
export class GridIndex {
  readonly cuts: Float64Array;
  private readonly table: Int32Array;
  private readonly lo: number;
  private readonly hi: number;
  private readonly scale: number;
  private readonly buckets: number;

  constructor(cuts: Float64Array, bucketsPerCut = 4) {
    this.cuts = cuts;
    const m = cuts.length;
    this.lo = m > 0 ? cuts[0]! : 0;
    this.hi = m > 0 ? cuts[m - 1]! : 0;
    const width = this.hi - this.lo;
    // A grid narrower than ~1e-305 overflows the scale (x·Infinity is NaN at the first cut): plain
    // binary search then.
    const scale = (bucketsPerCut * m) / width;
    this.buckets = m > 1 && width > 0 && Number.isFinite(width) && Number.isFinite(scale) ? bucketsPerCut * m : 0;
    this.scale = this.buckets > 0 ? scale : 0;
    // table[b] = number of cuts whose bucket is < b. bucket() is monotone, so every value in
    // bucket b has its lower bound in [table[b], table[b + 1]].
    this.table = new Int32Array(this.buckets + 1);
    if (this.buckets > 0) {
      let k = 0;
      for (let b = 0; b <= this.buckets; b++) {
        while (k < m && this.bucket(cuts[k]!) < b) k++;
        this.table[b] = k;
      }
    }
  }

  private bucket(x: number): number {
    const b = Math.floor((x - this.lo) * this.scale);
    return b < 0 ? 0 : b >= this.buckets ? this.buckets - 1 : b;
  }

  /** First index i with cuts[i] >= x (cuts.length when none); x must not be NaN. */
  lowerBound(x: number): number {
    const cuts = this.cuts;
    let lo: number;
    let hi: number;
    if (this.buckets === 0) {
      lo = 0;
      hi = cuts.length;
    } else if (x <= this.lo) {
      return 0;
    } else if (x > this.hi) {
      return cuts.length;
    } else {
      const b = this.bucket(x);
      lo = this.table[b]!;
      hi = this.table[b + 1]!;
    }
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cuts[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Slot of a finite value: 2i for the open interval below cuts[i], 2i+1 for cuts[i] itself. */
  slot(x: number): number {
    const i = this.lowerBound(x);
    return i < this.cuts.length && this.cuts[i] === x ? 2 * i + 1 : 2 * i;
  }
}
