import { ConfigError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { parseDemoConfig } from '../src/config.js';

function failure(env: Record<string, string>, scenario?: string): ConfigError {
  try {
    parseDemoConfig(env, scenario);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('the demo variables', () => {
  it('defaults to 40 predictions per event-time second at 30× the wall clock, scenario retrain', () => {
    expect(parseDemoConfig({}, undefined)).toEqual({ rate: 40, speed: 30, keep: false, scenario: 'retrain' });
    expect(
      parseDemoConfig(
        { DRIFTLINE_DEMO_RATE: '25', DRIFTLINE_DEMO_SPEED: '2.5', DRIFTLINE_DEMO_KEEP: '1' },
        'bad-candidate',
      ),
    ).toEqual({ rate: 25, speed: 2.5, keep: true, scenario: 'bad-candidate' });
  });

  it.each(['abc', '', '0', '-5', '1.5', '1e9'])('refuses DRIFTLINE_DEMO_RATE=%j, naming the variable', (value) => {
    const err = failure({ DRIFTLINE_DEMO_RATE: value });
    expect(err.field).toBe('DRIFTLINE_DEMO_RATE');
    expect(err.message).toMatch(/^DRIFTLINE_DEMO_RATE: /);
  });

  it.each(['abc', '', '0', '-1', 'NaN', 'Infinity'])(
    'refuses DRIFTLINE_DEMO_SPEED=%j, naming the variable',
    (value) => {
      expect(failure({ DRIFTLINE_DEMO_SPEED: value }).field).toBe('DRIFTLINE_DEMO_SPEED');
    },
  );

  it('names what the user set for a bad scenario: the variable (make demo SCENARIO=…) or --scenario', () => {
    const fromMake = failure({ DRIFTLINE_DEMO_SCENARIO: 'foo' });
    expect(fromMake.field).toBe('DRIFTLINE_DEMO_SCENARIO');
    expect(fromMake.message).toContain('SCENARIO=');
    expect(fromMake.message).toContain('"foo"');
    expect(failure({}, 'foo').field).toBe('--scenario');
  });

  it('refuses a misspelt DRIFTLINE_DEMO_ variable instead of ignoring it', () => {
    expect(failure({ DRIFTLINE_DEMO_RATES: '10' }).field).toBe('DRIFTLINE_DEMO_RATES');
  });
});
