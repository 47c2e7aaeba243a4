import { MAX_ENTITY_LENGTH, MAX_STRING_FEATURE_LENGTH } from '@driftline/features';
import type { FeatureEvent } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import { featureEventProblem, predictionEventProblem } from '../src/checks.js';
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
    expect(featureEventProblem(event({ entity_id: 'a\ud800' }))).toBe('entity_id is not well-formed Unicode');
    expect(featureEventProblem(event({ event_id: 'a\0b' }))).toMatch(/^event_id must be .* without NUL$/);
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
    ['bufferWaitMs', -1],
    ['bufferWaitMs', 0.5],
  ])('refuses %s = %s at once, naming it', async (name, value) => {
    await expect(createDriftlineProducer({ ...base, [name]: value })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining(`${name} must be a whole number`),
    });
  });
});
