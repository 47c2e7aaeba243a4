import { describe, expect, it } from 'vitest';
import { DEFAULT_PREDICT_LIMITS, parsePredictBody } from '../src/request.js';

describe('predict request bodies', () => {
  it('refuses a string feature value with a lone surrogate, naming the feature (the log wrote U+FFFD)', () => {
    const single = () =>
      parsePredictBody('{"entity_id":"u1","features":{"other":"a\\ud800b"}}', DEFAULT_PREDICT_LIMITS);
    expect(single).toThrow(
      expect.objectContaining({ status: 400, message: 'body.features.other: not well-formed Unicode' }),
    );
    const batch = () =>
      parsePredictBody(
        '{"instances":[{"entity_id":"u1"},{"entity_id":"u2","features":{"f":"\\udc00"}}]}',
        DEFAULT_PREDICT_LIMITS,
      );
    expect(batch).toThrow(/^instances\[1\]\.features\.f: not well-formed Unicode$/);
    // A surrogate pair is one character, well-formed: scored and logged alike.
    const pair = parsePredictBody('{"entity_id":"u1","features":{"f":"a\\ud83d\\ude00b"}}', DEFAULT_PREDICT_LIMITS);
    expect(pair.instances[0]?.features).toEqual({ f: 'a😀b' });
  });

  it('refuses an object wider than an instance can be before parsing it (60,000 keys cost up to 190 ms)', () => {
    const limits = { ...DEFAULT_PREDICT_LIMITS, maxFeatures: 4 };
    const features = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}`, i]));
    const wide = JSON.stringify({ entity_id: 'u1', features: features(60_000) });
    expect(() => parsePredictBody(wide, limits)).toThrow(
      expect.objectContaining({ status: 400, message: 'body: an object of more than 7 members' }),
    );
    // Within the scan's bound, the feature count is still judged by its own rule.
    const five = JSON.stringify({ entity_id: 'u1', features: features(5) });
    expect(() => parsePredictBody(five, limits)).toThrow(/^body\.features: at most 4 feature values$/);
    expect(parsePredictBody(JSON.stringify({ entity_id: 'u1', features: features(4) }), limits).instances).toHaveLength(
      1,
    );
  });
});
