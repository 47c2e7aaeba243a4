import { envField } from '@driftline/core';

/**
 * The label-joiner's variables of the rule that picks which value of a window is judged — and shown
 * as current by `driftline report` — the realized metric or its CBPE estimate (`evaluateEstimateBounds`):
 * label coverage at least DRIFTLINE_JOINER_REALIZED_COVERAGE, at least
 * DRIFTLINE_JOINER_ALERT_MIN_SAMPLES valid labels, and a realized value. One definition for the
 * joiner and the report command (the Grafana panel states the defaults in SQL).
 */
export const realizedRuleEnvShape = {
  /** Fewest predictions (estimates) and valid labels (realized metrics) a window is judged on. */
  DRIFTLINE_JOINER_ALERT_MIN_SAMPLES: envField.int(1).default(100),
  /** Label coverage from which a window is judged on its realized metrics instead of the estimate. */
  DRIFTLINE_JOINER_REALIZED_COVERAGE: envField.number(0, 1).default(0.5),
};
