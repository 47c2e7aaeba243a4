import { describe, expect, it } from 'vitest';
import { alertId, QUARANTINE_REASON_MAX_CHARS, quarantineAlert } from '../src/index.js';

const ctx = {
  model: 'm',
  version: 'v1',
  referenceId: 'r1',
  windowStart: 60_000,
  windowEnd: 120_000,
  events: 42,
  lateEvents: 1,
};

describe('quarantine alert (a window whose drift could not be computed or stored)', () => {
  it('is deterministic, carries the window and the cause, and no statistic', () => {
    const a = quarantineAlert(ctx, { code: 'SINK_REJECTED', reason: 'drift_windows: row refused' });
    expect(a).toEqual({
      alert_id: alertId('m', 'v1', 60_000, 'DRIFT_WINDOW_QUARANTINED'),
      kind: 'DRIFT_WINDOW_QUARANTINED',
      model: 'm',
      model_version: 'v1',
      feature: null,
      window_start: 60_000,
      window_end: 120_000,
      event_time: 120_000,
      method: 'quarantine',
      statistic: 0,
      p_value: null,
      threshold: 0,
      share_drifted: null,
      evidence: expect.any(String),
    });
    expect(JSON.parse(a.evidence)).toEqual({
      reference_id: 'r1',
      events: 42,
      late_events: 1,
      code: 'SINK_REJECTED',
      reason: 'drift_windows: row refused',
    });
    // A replay quarantining the same window again raises the same alert (consumers deduplicate).
    expect(quarantineAlert(ctx, { code: 'SINK_REJECTED', reason: 'drift_windows: row refused' })).toEqual(a);
    expect(a.alert_id).not.toBe(alertId('m', 'v1', 60_000, 'FEATURE_DRIFT'));
  });

  it('caps the reason', () => {
    const a = quarantineAlert(ctx, { code: 'VALIDATION_FAILED', reason: 'x'.repeat(100_000) });
    const reason = (JSON.parse(a.evidence) as { reason: string }).reason;
    expect(reason.length).toBe(QUARANTINE_REASON_MAX_CHARS + 1);
  });
});
