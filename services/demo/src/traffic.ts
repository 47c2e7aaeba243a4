// Synthetic traffic of the demo: a fraud model whose inputs drift at a known moment and whose
// labels arrive late (some never). Deterministic for a given seed, so two runs tell the same story.

export interface DemoEvent {
  readonly predictionId: string;
  readonly entityId: string;
  readonly eventTime: number;
  readonly features: { amount: number; age: number; tenure_days: number; country: string; device: string };
  /** The true probability of fraud; the label is drawn from it. */
  readonly truth: number;
  readonly label: 0 | 1;
  /** When the label becomes known (event time), or null when it never does. */
  readonly labelTime: number | null;
}

export interface TrafficOptions {
  readonly seed: number;
  readonly start: number;
  /** Events per simulated second. */
  readonly rate: number;
  /** Event time at which the inputs drift. */
  readonly driftAt: number;
  readonly labelDelayMs: number;
  /** Share of predictions that never get a label. */
  readonly unlabeledShare: number;
}

export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }
  /** xorshift32: small, fast and identical everywhere. */
  uniform(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.state = x;
    return x / 4294967296;
  }
  normal(): number {
    let s = 0;
    for (let i = 0; i < 12; i++) s += this.uniform();
    return s - 6;
  }
  pick<T>(items: readonly T[], weights: readonly number[]): T {
    const total = weights.reduce((a, b) => a + b, 0);
    let u = this.uniform() * total;
    for (let i = 0; i < items.length; i++) {
      u -= weights[i]!;
      if (u < 0) return items[i]!;
    }
    return items[items.length - 1]!;
  }
}

const COUNTRIES = ['fr', 'de', 'es', 'it', 'nl'] as const;
const DEVICES = ['ios', 'android', 'web'] as const;

/** Feature distribution before (drifted = false) and after the drift. */
export function drawFeatures(random: Random, drifted: boolean): DemoEvent['features'] {
  const amount = Math.exp(3.5 + 0.8 * random.normal() + (drifted ? 0.9 : 0));
  const age = Math.max(18, Math.round(40 + 12 * random.normal() - (drifted ? 9 : 0)));
  const tenure_days = Math.max(0, Math.round(400 + 250 * random.normal()));
  const country = random.pick(COUNTRIES, drifted ? [0.1, 0.1, 0.1, 0.1, 0.6] : [0.35, 0.3, 0.15, 0.15, 0.05]);
  const device = random.pick(DEVICES, drifted ? [0.2, 0.6, 0.2] : [0.4, 0.3, 0.3]);
  return { amount, age, tenure_days, country, device };
}

/**
 * The world's true fraud probability. After the drift the relationship changes too (concept
 * drift): large amounts stop being suspicious, new-market traffic (nl) and android are.
 */
export function truthOf(f: DemoEvent['features'], drifted: boolean): number {
  const amount = Math.log(f.amount / 40);
  // Strong enough a signal that a model can be told from the rules (ROC AUC of the truth ≈ 0.85).
  const z = drifted
    ? -3.2 +
      2 * (-0.6 * amount - 0.02 * (f.age - 40) + (f.country === 'nl' ? 1.8 : 0) + (f.device === 'android' ? 1 : 0))
    : -2.6 + 2 * (0.9 * amount - 0.02 * (f.age - 40) - 0.001 * (f.tenure_days - 400) + (f.device === 'web' ? 0.6 : 0));
  return 1 / (1 + Math.exp(-z));
}

/**
 * The scores of "v0", the rules the team used before driftline trained a model: two thresholds
 * (large amounts, web traffic), so a trained model beats them clearly on the same rows.
 */
export function rulesScore(f: DemoEvent['features']): number {
  return 0.03 + (f.amount > 60 ? 0.12 : 0) + (f.device === 'web' ? 0.05 : 0);
}

/** Events of simulated second `second` (event time start + second·1000 ..). */
export function eventsOfSecond(random: Random, options: TrafficOptions, second: number): DemoEvent[] {
  const out: DemoEvent[] = [];
  for (let i = 0; i < options.rate; i++) {
    const eventTime = options.start + second * 1000 + Math.floor((i * 1000) / options.rate);
    const drifted = eventTime >= options.driftAt;
    const features = drawFeatures(random, drifted);
    const truth = truthOf(features, drifted);
    const label = random.uniform() < truth ? 1 : 0;
    const labelled = random.uniform() >= options.unlabeledShare;
    const delay = Math.floor(options.labelDelayMs * (0.5 + random.uniform()));
    out.push({
      predictionId: `p-${second}-${i}`,
      entityId: `user-${Math.floor(random.uniform() * 5000)}`,
      eventTime,
      features,
      truth,
      label,
      labelTime: labelled ? eventTime + delay : null,
    });
  }
  return out;
}
