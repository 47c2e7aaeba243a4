import { MAX_METRIC_MAGNITUDE, MAX_MODEL_NAME_LENGTH, MAX_PREDICTION_ID_LENGTH } from '@driftline/core';
import { MAX_ENTITY_LENGTH, MAX_STRING_FEATURE_LENGTH } from '@driftline/features';
import type { FeatureEvent } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import {
  eventsOf,
  eventTimeTypeProblem,
  featureEventProblem,
  labelEventProblem,
  predictionEventProblem,
} from '../src/checks.js';
import { createDriftlineProducer } from '../src/index.js';

const event = (over: Partial<FeatureEvent> = {}): FeatureEvent => ({
  event_id: 'e1',
  view: 'profile',
  entity_id: 'u1',
  event_time: Date.UTC(2026, 0, 1),
  features: { age: 31, country: 'fr', member: true, gone: null },
  ...over,
});

describe('featureEventProblem: what no view could take', () => {
  it('passes an ordinary event', () => {
    expect(featureEventProblem(event())).toBeUndefined();
  });

  it('names a non-finite number, an over-long string, and ids out of bounds', () => {
    expect(featureEventProblem(event({ features: { age: Number.NaN } }))).toBe(
      'feature "age" is NaN: not a finite number',
    );
    expect(featureEventProblem(event({ features: { x: -Infinity } }))).toMatch(/"x" is -Infinity/);
    expect(featureEventProblem(event({ features: { s: 'a'.repeat(MAX_STRING_FEATURE_LENGTH + 1) } }))).toMatch(
      /"s" is 65537 characters, more than 65536/,
    );
    expect(featureEventProblem(event({ features: { s: 'a'.repeat(MAX_STRING_FEATURE_LENGTH) } }))).toBeUndefined();
    expect(featureEventProblem(event({ entity_id: '' }))).toMatch(/^entity_id must be/);
    expect(featureEventProblem(event({ entity_id: 'u'.repeat(MAX_ENTITY_LENGTH + 1) }))).toMatch(/^entity_id must be/);
    expect(featureEventProblem(event({ entity_id: 'a\ud800' }))).toMatch(/^entity_id is not well-formed Unicode/);
    expect(featureEventProblem(event({ event_id: 'a\0b' }))).toMatch(/^event_id must be .* without NUL$/);
  });

  // Avro's UTF-8 writes U+FFFD for a lone surrogate: "e\uD800" and "e\uD801" arrived as one event
  // id and the materializer dropped one as a duplicate (found by a review).
  it('names every string that is not well-formed UTF-16: ids, the view, feature names and values', () => {
    for (const [over, field] of [
      [{ event_id: 'e\uD800' }, /^event_id is not well-formed Unicode/],
      [{ event_id: 'e\uDC00x' }, /^event_id is not well-formed Unicode/],
      [{ view: 'v\uD801' }, /^view is not well-formed Unicode/],
      [{ features: { country: 'f\uD800r' } }, /^feature "country" is not well-formed Unicode/],
      [{ features: { 'c\uD800': 'fr' } }, /^the name of feature "c\\ud800" is not well-formed Unicode/],
    ] as const) {
      expect(featureEventProblem(event(over))).toMatch(field);
    }
    // The two ids that became one are each refused; a surrogate pair (an emoji) is text like any other.
    expect(featureEventProblem(event({ event_id: 'e\uD800' }))).toBeDefined();
    expect(featureEventProblem(event({ event_id: 'e\uD801' }))).toBeDefined();
    expect(featureEventProblem(event({ event_id: 'e😀', features: { '😀': '😀' } }))).toBeUndefined();
  });
});

describe('labelEventProblem: ids that would not survive UTF-8', () => {
  const label = { prediction_id: 'p1', model: 'churn', event_time: Date.UTC(2026, 0, 1), label: 1, value: null };
  it('passes well-formed ids and names a lone surrogate in either', () => {
    expect(labelEventProblem(label)).toBeUndefined();
    expect(labelEventProblem({ ...label, prediction_id: 'p\uD800' })).toMatch(/^prediction_id is not well-formed/);
    expect(labelEventProblem({ ...label, model: '\uDFFFm' })).toMatch(/^model is not well-formed/);
  });
  it('names a label that is not a finite number (the label-joiner dead-letters it)', () => {
    expect(labelEventProblem({ ...label, label: Number.NaN })).toBe('label is NaN: not a finite number');
    expect(labelEventProblem({ ...label, label: Number.NEGATIVE_INFINITY })).toBe(
      'label is -Infinity: not a finite number',
    );
    expect(labelEventProblem({ ...label, label: 0 })).toBeUndefined();
  });
});

// Each of these was accepted by the SDK (publish and flush resolved) and dead-lettered by the
// label-joiner, the drift-monitor or the skew-monitor, unseen by a producer that never reads the
// DLQ (a review): the SDK now applies the consumers' own rules (@driftline/core's event-rules).
describe('predictionEventProblem: what the label-joiner, drift-monitor and skew-monitor dead-letter', () => {
  const prediction = {
    prediction_id: 'p1',
    model: 'churn',
    model_version: '3',
    entity_id: 'u1',
    event_time: Date.UTC(2026, 0, 1),
    features: { a: 1 },
    prediction: 0.5,
    predicted_class: null,
  };

  it('passes an ordinary prediction, at every bound', () => {
    expect(predictionEventProblem(prediction)).toBeUndefined();
    expect(
      predictionEventProblem({
        ...prediction,
        prediction_id: 'p'.repeat(MAX_PREDICTION_ID_LENGTH),
        model: 'm'.repeat(MAX_MODEL_NAME_LENGTH),
        model_version: 'v'.repeat(MAX_MODEL_NAME_LENGTH),
        entity_id: 'u'.repeat(MAX_ENTITY_LENGTH),
        prediction: -MAX_METRIC_MAGNITUDE,
      }),
    ).toBeUndefined();
    for (const role of ['production', 'canary', 'shadow'])
      expect(predictionEventProblem({ ...prediction, role })).toBeUndefined();
  });

  it('refuses an empty model_version (the label-joiner and the drift-monitor dead-letter it)', () => {
    expect(predictionEventProblem({ ...prediction, model_version: '' })).toBe(
      'model_version must be 1..256 characters (got 0)',
    );
  });

  it('refuses a model_version over 256 characters', () => {
    expect(predictionEventProblem({ ...prediction, model_version: 'v'.repeat(257) })).toBe(
      'model_version must be 1..256 characters (got 257)',
    );
  });

  it('refuses an empty model', () => {
    expect(predictionEventProblem({ ...prediction, model: '' })).toBe('model must be 1..256 characters (got 0)');
  });

  it('refuses a model over 256 characters', () => {
    expect(predictionEventProblem({ ...prediction, model: 'm'.repeat(300) })).toBe(
      'model must be 1..256 characters (got 300)',
    );
  });

  it('refuses an empty prediction_id', () => {
    expect(predictionEventProblem({ ...prediction, prediction_id: '' })).toBe(
      'prediction_id must be 1..512 characters (got 0)',
    );
  });

  it('refuses a prediction_id over 512 characters', () => {
    expect(predictionEventProblem({ ...prediction, prediction_id: 'p'.repeat(600) })).toBe(
      'prediction_id must be 1..512 characters (got 600)',
    );
  });

  it('refuses a role other than production, canary or shadow (the case counts)', () => {
    expect(predictionEventProblem({ ...prediction, role: 'Canary' })).toBe(
      'role "Canary" is not production, canary or shadow',
    );
    expect(predictionEventProblem({ ...prediction, role: '' })).toBe('role "" is not production, canary or shadow');
  });

  it('refuses a prediction beyond ±1e100 (the metrics square and sum it)', () => {
    expect(predictionEventProblem({ ...prediction, prediction: 1e200 })).toBe('prediction is 1e+200: beyond ±1e+100');
    expect(predictionEventProblem({ ...prediction, prediction: -1e101 })).toBe('prediction is -1e+101: beyond ±1e+100');
  });

  it('accepts an entity_id the online store cannot key (only the skew-monitor, on its sample, needs one)', () => {
    // A regression review: refusing it lost a batch-scoring model's every prediction for the
    // label-joiner and the drift monitor, which need no entity, and a shadow one's too.
    expect(predictionEventProblem({ ...prediction, entity_id: '' })).toBeUndefined();
    expect(predictionEventProblem({ ...prediction, role: 'shadow', entity_id: '' })).toBeUndefined();
    expect(predictionEventProblem({ ...prediction, entity_id: 'u'.repeat(MAX_ENTITY_LENGTH + 1) })).toBeUndefined();
    expect(predictionEventProblem({ ...prediction, entity_id: 'a\ud800' })).toMatch(/^entity_id is not well-formed/);
  });
});

describe('labelEventProblem: what the label-joiner dead-letters whatever the task', () => {
  const label = { prediction_id: 'p1', model: 'churn', event_time: Date.UTC(2026, 0, 1), label: 1, value: null };

  it('passes a label at every bound, and a value that is not finite (it counts as none)', () => {
    expect(
      labelEventProblem({
        ...label,
        prediction_id: 'p'.repeat(MAX_PREDICTION_ID_LENGTH),
        model: 'm'.repeat(MAX_MODEL_NAME_LENGTH),
        label: MAX_METRIC_MAGNITUDE,
        value: -MAX_METRIC_MAGNITUDE,
      }),
    ).toBeUndefined();
    expect(labelEventProblem({ ...label, value: Number.NaN })).toBeUndefined();
  });

  it('refuses an empty model (a label joins the prediction of its model)', () => {
    expect(labelEventProblem({ ...label, model: '' })).toBe('model must be 1..256 characters (got 0)');
  });

  it('refuses a model over 256 characters', () => {
    expect(labelEventProblem({ ...label, model: 'm'.repeat(257) })).toBe('model must be 1..256 characters (got 257)');
  });

  it('refuses an empty prediction_id', () => {
    expect(labelEventProblem({ ...label, prediction_id: '' })).toBe('prediction_id must be 1..512 characters (got 0)');
  });

  it('refuses a prediction_id over 512 characters', () => {
    expect(labelEventProblem({ ...label, prediction_id: 'p'.repeat(513) })).toBe(
      'prediction_id must be 1..512 characters (got 513)',
    );
  });

  it('refuses a label beyond ±1e100', () => {
    expect(labelEventProblem({ ...label, label: 1e200 })).toBe('label is 1e+200: beyond ±1e+100');
  });

  it('refuses a value beyond ±1e100', () => {
    expect(labelEventProblem({ ...label, value: 1e200 })).toBe('value is 1e+200: beyond ±1e+100');
  });
});

describe('eventsOf and eventTimeTypeProblem: input of the wrong type (untyped callers)', () => {
  const refusal = (input: unknown) => {
    try {
      eventsOf(input as object);
      return undefined;
    } catch (error) {
      return error;
    }
  };

  it('refuses null, undefined and non-objects as VALIDATION_FAILED naming what they are', () => {
    expect(refusal(null)).toMatchObject({ code: 'VALIDATION_FAILED', message: 'an event must be an object, got null' });
    expect(refusal([undefined])).toMatchObject({ message: 'an event must be an object, got undefined' });
    expect(refusal([{}, 'x'])).toMatchObject({ message: 'event [1]: an event must be an object, got a string' });
    expect(refusal([{}, [{}]])).toMatchObject({ message: 'event [1]: an event must be an object, got an array' });
    expect(eventsOf({ a: 1 })).toEqual([{ a: 1 }]);
    expect(eventsOf([{ a: 1 }, { a: 2 }])).toHaveLength(2);
  });

  it('names the type of an event_time that is not a number', () => {
    expect(eventTimeTypeProblem(1_796_450_171_084)).toBeUndefined();
    expect(eventTimeTypeProblem('1796450171084')).toBe(
      'event_time must be a number of epoch milliseconds, got a string',
    );
    expect(eventTimeTypeProblem(10n)).toBe('event_time must be a number of epoch milliseconds, got a bigint');
    expect(eventTimeTypeProblem(new Date())).toMatch(/got a Date \(use its getTime\(\)\)$/);
  });
});

describe('predictionEventProblem: scores the label-joiner would refuse', () => {
  const prediction = {
    prediction_id: 'p1',
    model: 'churn',
    model_version: 'v2',
    entity_id: 'u1',
    event_time: Date.UTC(2026, 0, 1),
    features: {},
    prediction: 0.7,
    predicted_class: null,
    role: 'production',
    scores: { v1: 0.6, v2: 0.7 },
  };

  it('names ids, names, classes, feature values and score versions that are not well-formed UTF-16', () => {
    for (const [over, field] of [
      [{ prediction_id: 'p\uD800' }, /^prediction_id is not/],
      [{ model: 'm\uDC00' }, /^model is not/],
      [{ model_version: 'v\uD800' }, /^model_version is not/],
      [{ entity_id: 'u\uD800' }, /^entity_id is not/],
      [{ predicted_class: 'c\uD800' }, /^predicted_class is not/],
      [{ features: { country: 'f\uD800' } }, /^feature "country" is not/],
      [{ features: { '\uD800': 1 } }, /^the name of feature "\\ud800" is not/],
      [{ scores: { 'v\uD800': 0.5 } }, /^the name of score "v\\ud800" is not/],
    ] as const) {
      expect(predictionEventProblem({ ...prediction, ...over })).toMatch(field);
    }
  });

  it('passes finite scores and names a non-finite one', () => {
    expect(predictionEventProblem(prediction)).toBeUndefined();
    expect(predictionEventProblem({ ...prediction, scores: null })).toBeUndefined();
    expect(predictionEventProblem({ ...prediction, prediction: Number.NaN })).toBe(
      'prediction is NaN: not a finite number',
    );
    expect(predictionEventProblem({ ...prediction, scores: { v1: Number.POSITIVE_INFINITY } })).toBe(
      'scores["v1"] is Infinity: not a finite number',
    );
  });
});

describe('createDriftlineProducer options', () => {
  const base = {
    kafka: { brokers: ['127.0.0.1:1'], clientId: 't', ssl: false },
    registry: { url: 'http://127.0.0.1:1' },
  };

  it.each([
    ['batchSize', 0],
    ['batchSize', Number.NaN],
    ['batchSize', 1.5],
    ['lingerMs', -1],
    ['maxBuffered', Number.NaN],
    ['maxEventBytes', 0],
    ['maxBufferedBytes', 0],
    ['maxBufferedBytes', Number.NaN],
    ['maxBufferedBytes', 1.5],
    ['maxBufferedBytes', 2 ** 40],
    ['bufferWaitMs', -1],
    ['bufferWaitMs', 0.5],
  ])('refuses %s = %s at once, naming it', async (name, value) => {
    await expect(createDriftlineProducer({ ...base, [name]: value })).rejects.toMatchObject({
      name: 'ConfigError',
      code: 'CONFIG_INVALID',
      field: name,
      message: expect.stringContaining(`${name}: must be a whole number`),
    });
  });
});
