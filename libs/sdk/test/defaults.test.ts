import { describe, expect, it } from 'vitest';
import { featuresWithDefaults, labelsWithDefaults, predictionsWithDefaults } from '../src/defaults.js';

// A counter clock and id source: each call of the SDK draws new ones, as Date.now and randomUUID do.
const sources = () => {
  let n = 0;
  return { now: () => 1_000 + n++, newId: () => `id-${n++}` };
};

describe('the defaults a publish call assigns (found by a review: a retry double-counted windows)', () => {
  it('assigns a new event id and time to features without them, on copies of the caller objects', () => {
    const input = [{ view: 'spend', entity_id: 'retry1', features: { amount: 10 } }];
    const s = sources();
    const first = featuresWithDefaults(input, s);
    const again = featuresWithDefaults(input, s);
    // Publishing the caller's objects twice draws new ids: downstream counts both.
    expect(first[0]?.event_id).not.toBe(again[0]?.event_id);
    expect(input[0]).toEqual({ view: 'spend', entity_id: 'retry1', features: { amount: 10 } });
    // Publishing what the call returned again keeps its ids and times: downstream deduplicates it.
    expect(featuresWithDefaults(first, s)).toEqual(first);
  });

  it('keeps the caller-given event id and time', () => {
    const event = { event_id: 'mine', event_time: 5, view: 'v', entity_id: 'e', features: {} };
    expect(featuresWithDefaults([event], sources())).toEqual([event]);
  });

  it('treats predictions and labels alike: their event time and predicted class are kept on a retry', () => {
    const s = sources();
    const prediction = {
      prediction_id: 'p',
      model: 'm',
      model_version: '1',
      entity_id: 'e',
      features: {},
      prediction: 1,
    };
    const predictions = predictionsWithDefaults([prediction], s);
    expect(predictions[0]).toMatchObject({ event_time: expect.any(Number), predicted_class: null });
    expect(prediction).not.toHaveProperty('event_time');
    expect(predictionsWithDefaults(predictions, s)).toEqual(predictions);
    const labels = labelsWithDefaults([{ prediction_id: 'p', model: 'm', label: 1 }], s);
    expect(labels[0]?.event_time).toEqual(expect.any(Number));
    expect(labelsWithDefaults(labels, s)).toEqual(labels);
  });
});
