import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRunnerEnv } from '@driftline/service';
import { describe, expect, it } from 'vitest';
import { skewMonitorService } from '../src/service.js';

const views = join(tmpdir(), `skew-views-${process.pid}.yaml`);
writeFileSync(views, 'views:\n  - name: profile\n    entity: user_id\n    features: { age: double }\n');
const base = {
  DRIFTLINE_KAFKA_BROKERS: '127.0.0.1:9092',
  DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://127.0.0.1:8081',
  DRIFTLINE_REDIS_URL: 'redis://127.0.0.1:6379',
  DRIFTLINE_FEATURE_VIEWS: views,
};
const parse = (env: Record<string, string>) =>
  parseRunnerEnv({ services: [skewMonitorService as never], env: { ...base, ...env } });

describe('skew-monitor configuration', () => {
  it('has defaults and reads tolerances in scientific notation', () => {
    const parsed = parse({ DRIFTLINE_SKEW_RELATIVE_TOLERANCE: '1e-6', DRIFTLINE_SKEW_SAMPLE_RATE: '0.25' });
    const config = parsed.serviceConfigs[0] as { sampleRate: number; tolerance: { relative: number } };
    expect(config.sampleRate).toBe(0.25);
    expect(config.tolerance.relative).toBe(1e-6);
  });

  it('names the bad variable', () => {
    expect(() => parse({ DRIFTLINE_SKEW_SAMPLE_RATE: '2' })).toThrow(/DRIFTLINE_SKEW_SAMPLE_RATE/);
    expect(() => parse({ DRIFTLINE_SKEW_MAX_SHARE_MISMATCHED: 'lots' })).toThrow(/DRIFTLINE_SKEW_MAX_SHARE_MISMATCHED/);
    expect(() => parse({ DRIFTLINE_SKEW_WINDOW: '10ms' })).toThrow(/DRIFTLINE_SKEW_WINDOW/);
  });

  it('bounds the window at 1 d and refuses a share bound no window can exceed (found by a review)', () => {
    const config = (env: Record<string, string>) =>
      parse(env).serviceConfigs[0] as { windowMs: number; rule: { maxShareMismatched: number } };
    expect(config({ DRIFTLINE_SKEW_WINDOW: '1d' }).windowMs).toBe(86_400_000);
    expect(() => parse({ DRIFTLINE_SKEW_WINDOW: '25h' })).toThrow(/DRIFTLINE_SKEW_WINDOW/);
    expect(() => parse({ DRIFTLINE_SKEW_WINDOW: '100000w' })).toThrow(/DRIFTLINE_SKEW_WINDOW/);
    expect(config({ DRIFTLINE_SKEW_MAX_SHARE_MISMATCHED: '0.99' }).rule.maxShareMismatched).toBe(0.99);
    expect(config({ DRIFTLINE_SKEW_MAX_SHARE_MISMATCHED: '0' }).rule.maxShareMismatched).toBe(0);
    expect(() => parse({ DRIFTLINE_SKEW_MAX_SHARE_MISMATCHED: '1' })).toThrow(
      /DRIFTLINE_SKEW_MAX_SHARE_MISMATCHED.*below 1/,
    );
  });
});

describe('DRIFTLINE_SKEW_RECENT_IDS', () => {
  const recentIds = (env: Record<string, string>) => (parse(env).serviceConfigs[0] as { recentIds: number }).recentIds;
  it('defaults to 100,000 sampled ids a partition, 0 turns it off, above 1,000,000 or not a whole number fails naming it', () => {
    expect(recentIds({})).toBe(100_000);
    expect(recentIds({ DRIFTLINE_SKEW_RECENT_IDS: '0' })).toBe(0);
    expect(recentIds({ DRIFTLINE_SKEW_RECENT_IDS: '1000000' })).toBe(1_000_000);
    for (const bad of ['1000001', '-1', '1e5', 'many', '']) {
      expect(() => parse({ DRIFTLINE_SKEW_RECENT_IDS: bad })).toThrow(/DRIFTLINE_SKEW_RECENT_IDS/);
    }
  });
});

describe('skew-monitor consumer group (padding, commit 25e952a)', () => {
  it('refuses a padded or blank group, naming the variable: " skew-monitor " is another group', () => {
    expect((parse({ DRIFTLINE_SKEW_GROUP: 'skew-a' }).serviceConfigs[0] as { group: string }).group).toBe('skew-a');
    for (const bad of [' x', 'x ', '\tx', '   '])
      expect(() => parse({ DRIFTLINE_SKEW_GROUP: bad })).toThrow(/DRIFTLINE_SKEW_GROUP: /);
  });
});
