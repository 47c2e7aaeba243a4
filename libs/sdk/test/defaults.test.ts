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

  it('copies the features and scores maps: a caller reusing its maps changes no returned event (found by a review)', () => {
    const features: Record<string, number> = { amount: 10 };
    const scores: Record<string, number> = { '1': 0.4 };
    const s = sources();
    const [feature] = featuresWithDefaults([{ view: 'spend', entity_id: 'e1', features }], s);
    const [prediction] = predictionsWithDefaults(
      [{ prediction_id: 'p', model: 'm', model_version: '1', entity_id: 'e', features, prediction: 0.4, scores }],
      s,
    );
    // The caller fills the same maps for its next event: before, the returned (retry) events
    // followed, and a retry sent 99 under the event id that had carried 10.
    features.amount = 99;
    scores['1'] = 0.9;
    expect(feature?.features).toEqual({ amount: 10 });
    expect(prediction?.features).toEqual({ amount: 10 });
    expect(prediction?.scores).toEqual({ '1': 0.4 });
    // No scores given stays no scores (null or absent as given).
    const base = { prediction_id: 'q', model: 'm', model_version: '1', entity_id: 'e', features: {}, prediction: 1 };
    expect(predictionsWithDefaults([base], s)[0]).not.toHaveProperty('scores');
    expect(predictionsWithDefaults([{ ...base, scores: null }], s)[0]?.scores).toBeNull();
  });
});
