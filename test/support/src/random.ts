/**
 * The one seeded PRNG of driftline's tests and benches: mulberry32, 32-bit state, every step exact
 * integer arithmetic. libs/stats/scripts/make_fixtures.py mirrors it in Python, so those fixtures
 * need no raw data. For reproducible test data only, never for anything secret. No imports: unit
 * tests can use it without pulling in Kafka or any other client.
 */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next 32-bit output, an integer in [0, 2^32). */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1) >>> 0;
    const s = (t + (Math.imul(t ^ (t >>> 7), t | 61) >>> 0)) >>> 0;
    t = (t ^ s) >>> 0;
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform on [0, 1): an exact multiple of 2^-32. */
  uniform(): number {
    return this.nextU32() / 0x1_0000_0000;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Approximately standard normal: Irwin–Hall sum of 12 uniforms minus 6 (exact in float64, bounded by ±6). */
  normal(): number {
    let s = 0;
    for (let i = 0; i < 12; i++) s += this.uniform();
    return s - 6;
  }

  /** One element of a non-empty array. */
  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('choice of an empty array');
    return items[this.int(items.length)]!;
  }

  /** Fisher–Yates shuffle of `items` in place; returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}

/** A uniform [0, 1) source as a plain function, for code that takes `() => number`. */
export function seededUniform(seed: number): () => number {
  const rng = new SeededRandom(seed);
  return () => rng.uniform();
}
