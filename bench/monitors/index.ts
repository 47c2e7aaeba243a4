// `monitors` entry of `make bench`: every monitor's per-prediction CPU cost in one run, on the
// same events (details in services/drift-monitor/README.md, "Benchmark"). The monitors of other
// services join as extras: the skew-monitor's sampling and per-feature comparison (the online
// store's answer stands in for Redis, whose round trip is I/O, not monitor cost) and the
// label-joiner's CBPE score histogram (one slot per prediction).
import { benchMonitors, type MonitorExtra } from '@driftline/drift-monitor/bench';
import { addScore, emptyScoreHistogram } from '@driftline/performance';
import { DEFAULT_TOLERANCE, emptyCounts, isSampled, observe } from '@driftline/skew';

/** The skew-monitor's default sample rate (DRIFTLINE_SKEW_SAMPLE_RATE). */
const SKEW_SAMPLE_RATE = 0.05;

export async function runMonitorsBench(): Promise<Record<string, number | string>> {
  const counts = emptyCounts();
  const skew: MonitorExtra = {
    name: 'skew_sampling',
    perBatch(events) {
      for (const e of events) {
        if (!isSampled(e.prediction_id, SKEW_SAMPLE_RATE)) continue;
        for (const [feature, value] of Object.entries(e.features)) {
          if (feature.length === 0) continue;
          observe(counts, value, { eventTime: e.event_time, value }, e.event_time, DEFAULT_TOLERANCE);
        }
      }
    },
  };
  const histogram = emptyScoreHistogram();
  const cbpe: MonitorExtra = {
    name: 'cbpe',
    perBatch(events) {
      for (const e of events) addScore(histogram, e.prediction, 0.5);
    },
  };
  const result = await benchMonitors([skew, cbpe]);
  if (counts.sampled === 0 || histogram.counts.length === 0) throw new Error('an extra monitor saw nothing');
  return result;
}
