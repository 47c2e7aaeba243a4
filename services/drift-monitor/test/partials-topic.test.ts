import { ConfigError, parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { driftEnvShape, toDriftConfig } from '../src/config.js';
import { PARTIALS_TOPIC, partialsTopicOf } from '../src/service.js';

// Every group shared one partials topic, so a new group merged the old group's partials (a review).
describe('the partials topic of a group', () => {
  it('is one per group; the default group keeps drift.partials.v1', () => {
    expect(partialsTopicOf('drift-monitor')).toBe(PARTIALS_TOPIC);
    expect(partialsTopicOf('drift-monitor-2s')).toBe('drift.partials.drift-monitor-2s.v1');
    expect(partialsTopicOf('drift-monitor-2s')).not.toBe(partialsTopicOf('drift-monitor-5m'));
  });

  it('DRIFTLINE_DRIFT_GROUP holds only what a topic name may', () => {
    expect(toDriftConfig(parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_GROUP: 'dm_2.s-x' })).group).toBe('dm_2.s-x');
    expect(() => parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_GROUP: 'drift/monitor' })).toThrow(ConfigError);
    expect(() => parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_GROUP: 'drift monitor' })).toThrow(
      /DRIFTLINE_DRIFT_GROUP: must be letters, digits, dot, dash, underscore only/,
    );
  });
});
