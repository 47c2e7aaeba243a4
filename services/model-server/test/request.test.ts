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
});
