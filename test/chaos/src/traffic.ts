// The seeded stream of the chaos run: predictions with their features, feature events, late labels
// and about 1% hostile records. Everything is a function of (seed, start, second), so the offline
// computation can be rebuilt from the topics and the expected dead letters are known exactly.
import type { FeatureEvent, LabelEvent, PredictionEvent } from '@driftline/schemas';
import { SeededRandom } from '@driftline/test-support/random';

export const MODEL = 'chaos';
export const VERSION = 'v1';
/** A second model that shares prediction ids with MODEL: its labels must never join MODEL's predictions. */
export const GHOST_MODEL = 'ghost';
export const VIEW = 'user';
export const HOSTILE_KEY_PREFIX = 'hostile:';

/** Poison for every consumer of the topic: each must dead-letter it once, with a reason. */
export const POISON_KINDS = {
  feature: [
    'truncated',
    'huge-block-count',
    'unknown-schema-id',
    'wrong-magic',
    'empty',
    'event-time-microseconds',
    'event-time-pre-1900',
    'event-time-before-min',
    'event-time-far-future',
    'undeclared-view',
    'undeclared-feature',
    'oversized',
  ],
  prediction: [
    'truncated',
    'huge-block-count',
    'unknown-schema-id',
    'wrong-magic',
    'empty',
    'event-time-microseconds',
    'event-time-pre-1900',
    'event-time-before-min',
    'event-time-far-future',
  ],
  label: [
    'truncated',
    'huge-block-count',
    'unknown-schema-id',
    'wrong-magic',
    'empty',
    'event-time-microseconds',
    'event-time-pre-1900',
    'event-time-far-future',
  ],
} as const;

export type Topic = keyof typeof POISON_KINDS;
export type HostileKind = (typeof POISON_KINDS)[Topic][number];

export interface HostileRecord {
  readonly topic: Topic;
  readonly kind: HostileKind;
  readonly key: string;
  /** The valid event the hostile bytes are made from (its time replaced for the time kinds). */
  readonly base: FeatureEvent | PredictionEvent | LabelEvent;
}

export interface Second {
  readonly predictions: PredictionEvent[];
  readonly features: FeatureEvent[];
  /** Labels that become due in this second (event time within it). */
  readonly labels: LabelEvent[];
  readonly hostile: HostileRecord[];
}

export interface TrafficOptions {
  readonly seed: number;
  /** Event time of second 0 (epoch ms). */
  readonly start: number;
  /** Predictions per second. */
  readonly rate: number;
  readonly entities: number;
  /** Second from which the inputs drift. */
  readonly driftFromSecond: number;
  /** Share of records followed by a hostile one. */
  readonly hostileShare: number;
}

const COUNTRIES = ['fr', 'de', 'es', 'it', 'nl'] as const;

export function drawFeatures(random: SeededRandom, drifted: boolean): { amount: number; country: string } {
  const amount = Math.round(Math.exp(3.5 + 0.8 * random.normal() + (drifted ? 1.2 : 0)) * 100) / 100;
  const weights = drifted ? [0.05, 0.05, 0.1, 0.1, 0.7] : [0.35, 0.3, 0.15, 0.15, 0.05];
  let u = random.uniform();
  let country: string = COUNTRIES[COUNTRIES.length - 1] ?? 'nl';
  for (let i = 0; i < COUNTRIES.length; i++) {
    u -= weights[i] ?? 0;
    if (u < 0) {
      country = COUNTRIES[i] ?? country;
      break;
    }
  }
  return { amount, country };
}

export function scoreOf(f: { amount: number; country: string }): number {
  const z = -3 + 0.9 * Math.log(f.amount / 40) + (f.country === 'nl' ? 0.8 : 0);
  return 1 / (1 + Math.exp(-z));
}

/** Training rows of MODEL/VERSION: the world before the drift (CSV with the prediction column). */
export function referenceCsv(seed: number, rows: number): string {
  const random = new SeededRandom(seed ^ 0x5eed);
  const lines = ['amount,country,prediction'];
  for (let i = 0; i < rows; i++) {
    const f = drawFeatures(random, false);
    lines.push(`${f.amount},${f.country},${scoreOf(f)}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The whole stream, second by second. Labels are drawn with their prediction and emitted in the
 * second their event time falls in (1–4 s later), so a label never precedes its prediction by much.
 */
export class Traffic {
  private readonly random: SeededRandom;
  private readonly pendingLabels: LabelEvent[] = [];
  private hostileCount = 0;

  constructor(readonly options: TrafficOptions) {
    this.random = new SeededRandom(options.seed);
  }

  second(s: number): Second {
    const { start, rate } = this.options;
    const random = this.random;
    const drifted = s >= this.options.driftFromSecond;
    const predictions: PredictionEvent[] = [];
    const features: FeatureEvent[] = [];
    const hostile: HostileRecord[] = [];
    const benignLabels: LabelEvent[] = [];
    const maybeHostile = (topic: Topic, base: HostileRecord['base']) => {
      if (random.uniform() >= this.options.hostileShare) return;
      const kinds = POISON_KINDS[topic];
      const kind = kinds[random.int(kinds.length)] as HostileKind;
      hostile.push({ topic, kind, key: `${HOSTILE_KEY_PREFIX}${topic}:${kind}:${this.hostileCount++}`, base });
    };
    for (let i = 0; i < rate; i++) {
      const eventTime = start + s * 1000 + Math.floor((i * 1000) / rate);
      const f = drawFeatures(random, drifted);
      const entity = `u-${random.int(this.options.entities)}`;
      const prediction: PredictionEvent = {
        prediction_id: `c-${s}-${i}`,
        model: MODEL,
        model_version: VERSION,
        entity_id: entity,
        event_time: eventTime,
        features: { amount: f.amount, country: f.country },
        prediction: scoreOf(f),
        predicted_class: null,
      };
      predictions.push(prediction);
      features.push({
        event_id: `f-${s}-${i}`,
        view: VIEW,
        entity_id: entity,
        event_time: eventTime,
        features: { amount: f.amount, country: f.country },
      });
      if (random.uniform() < 0.9) {
        this.pendingLabels.push({
          prediction_id: prediction.prediction_id,
          model: MODEL,
          event_time: eventTime + 1000 + random.int(3000),
          label: random.uniform() < prediction.prediction ? 1 : 0,
        });
      }
      maybeHostile('prediction', prediction);
      maybeHostile('feature', features[features.length - 1] as FeatureEvent);
      const roll = random.uniform();
      if (roll < this.options.hostileShare / 2) {
        benignLabels.push({
          prediction_id: prediction.prediction_id,
          model: GHOST_MODEL,
          event_time: eventTime + 500,
          label: 1,
        });
      } else if (roll < this.options.hostileShare) {
        benignLabels.push({ prediction_id: `nope-${s}-${i}`, model: MODEL, event_time: eventTime + 500, label: 0 });
      }
    }
    const end = start + (s + 1) * 1000;
    const labels = this.pendingLabels.filter((l) => l.event_time < end);
    this.pendingLabels.splice(0, this.pendingLabels.length, ...this.pendingLabels.filter((l) => l.event_time >= end));
    for (const label of labels) maybeHostile('label', label);
    return { predictions, features, labels: [...labels, ...benignLabels], hostile };
  }
}
