import { parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { labelJoinerEnvShape, toLabelJoinerConfig } from '../src/config.js';

const configure = (env: Record<string, string>) =>
  toLabelJoinerConfig(parseEnv(labelJoinerEnvShape, { DRIFTLINE_REDIS_URL: 'redis://127.0.0.1:6379', ...env }));

describe('label-joiner variables (found by a review)', () => {
  it('lists refuse a repeated item: the last of two model tasks won, with the wrong metrics', () => {
    for (const [name, value, twice] of [
      ['DRIFTLINE_JOINER_SEGMENT_FEATURES', 'country,country', 'country'],
      ['DRIFTLINE_JOINER_MODEL_TASKS', 'a:regression,a:classification', 'a'],
      ['DRIFTLINE_JOINER_ALERT_BOUNDS', 'accuracy<0.8,accuracy<0.9', 'accuracy<'],
    ] as const)
      expect(() => configure({ [name]: value })).toThrow(`${name}: lists ${JSON.stringify(twice)} twice`);
    expect(() => configure({ DRIFTLINE_JOINER_SEGMENT_FEATURES: 'country,,device' })).toThrow(
      /^DRIFTLINE_JOINER_SEGMENT_FEATURES: has an empty item/,
    );
    const config = configure({
      DRIFTLINE_JOINER_SEGMENT_FEATURES: 'country, device',
      DRIFTLINE_JOINER_MODEL_TASKS: 'a:regression,b:classification',
      DRIFTLINE_JOINER_ALERT_BOUNDS: 'accuracy<0.8,rmse>3',
    });
    expect(config.segmentFeatures).toEqual(['country', 'device']);
    expect([...config.modelTasks]).toEqual([
      ['a', 'regression'],
      ['b', 'classification'],
    ]);
    expect(config.bounds.map((b) => `${b.metric}${b.op}${b.value}`)).toEqual(['accuracy<0.8', 'rmse>3']);
    // Unset: none of each.
    const none = configure({});
    expect([none.segmentFeatures, [...none.modelTasks], none.bounds]).toEqual([[], [], []]);
  });

  it("DRIFTLINE_JOINER_MAX_BATCH_BYTES from 1 KiB to 64 MiB, the materializer's bound", () => {
    expect(() => configure({ DRIFTLINE_JOINER_MAX_BATCH_BYTES: String(64 * 1_048_576 + 1) })).toThrow(
      /^DRIFTLINE_JOINER_MAX_BATCH_BYTES: [^\n]*67108864/,
    );
    expect(() => configure({ DRIFTLINE_JOINER_MAX_BATCH_BYTES: '1023' })).toThrow(
      /^DRIFTLINE_JOINER_MAX_BATCH_BYTES: /,
    );
    expect(configure({ DRIFTLINE_JOINER_MAX_BATCH_BYTES: String(64 * 1_048_576) }).maxBatchBytes).toBe(64 * 1_048_576);
  });

  it('DRIFTLINE_JOINER_SCORE_WINDOWS at most 10,000 (45 KB each, taken in one reply: 100,000 was ~4.5 GB)', () => {
    expect(() => configure({ DRIFTLINE_JOINER_SCORE_WINDOWS: '10001' })).toThrow(/^DRIFTLINE_JOINER_SCORE_WINDOWS: /);
    expect(configure({ DRIFTLINE_JOINER_SCORE_WINDOWS: '10000' }).scoreWindows).toBe(10_000);
  });

  it('DRIFTLINE_JOINER_FALSE_ALARM_COST is a decimal (0x10, 0b101 and " 5 " were read as numbers)', () => {
    for (const text of ['0x10', '0b101', ' 5 ', 'Infinity'])
      expect(() => configure({ DRIFTLINE_JOINER_FALSE_ALARM_COST: text })).toThrow(
        /^DRIFTLINE_JOINER_FALSE_ALARM_COST: must be a decimal number/,
      );
    expect(() => configure({ DRIFTLINE_JOINER_FALSE_ALARM_COST: '-5' })).toThrow(
      /^DRIFTLINE_JOINER_FALSE_ALARM_COST: /,
    );
    expect(configure({ DRIFTLINE_JOINER_FALSE_ALARM_COST: '2.5' }).falseAlarmCost).toBe(2.5);
    expect(configure({ DRIFTLINE_JOINER_FALSE_ALARM_COST: '' }).falseAlarmCost).toBeUndefined();
    expect(configure({}).falseAlarmCost).toBeUndefined();
  });

  it('DRIFTLINE_JOINER_ALERT_MIN_SAMPLES at most half of DRIFTLINE_JOINER_MAX_WINDOW_ROWS (a sampled window would publish no metrics)', () => {
    expect(() =>
      configure({ DRIFTLINE_JOINER_ALERT_MIN_SAMPLES: '600000', DRIFTLINE_JOINER_MAX_WINDOW_ROWS: '1000000' }),
    ).toThrow(
      /^DRIFTLINE_JOINER_ALERT_MIN_SAMPLES: 600000 is more than half of DRIFTLINE_JOINER_MAX_WINDOW_ROWS \(1000000\)/,
    );
    expect(
      configure({ DRIFTLINE_JOINER_ALERT_MIN_SAMPLES: '500', DRIFTLINE_JOINER_MAX_WINDOW_ROWS: '1000' })
        .alertMinSamples,
    ).toBe(500);
    expect(configure({}).alertMinSamples).toBe(100);
  });

  it('DRIFTLINE_JOINER_MAX_LABEL_DELAY is at least 1 s; the group has no white space at an end', () => {
    expect(() => configure({ DRIFTLINE_JOINER_MAX_LABEL_DELAY: '999' })).toThrow(
      /^DRIFTLINE_JOINER_MAX_LABEL_DELAY: must be at least 1000 ms/,
    );
    expect(configure({ DRIFTLINE_JOINER_MAX_LABEL_DELAY: '1s' }).join.maxDelayMs).toBe(1_000);
    for (const group of [' driftline-label-joiner ', '   '])
      expect(() => configure({ DRIFTLINE_JOINER_GROUP: group })).toThrow(
        /^DRIFTLINE_JOINER_GROUP: must not start or end with white space/,
      );
  });
});
