import { computeWindow, type PerformanceRow, type WindowColumns, WindowColumnsBuilder } from '../src/index.js';

export interface LabeledRow {
  readonly prediction: number;
  readonly label: number;
  readonly segments: readonly string[];
}

/** A window's columns from rows written out as objects (test input). */
export function windowOf(
  segmentFeatures: number,
  labeled: readonly LabeledRow[],
  expired: ReadonlyArray<readonly string[]> = [],
): WindowColumns {
  const builder = new WindowColumnsBuilder(segmentFeatures);
  for (const r of labeled) builder.addLabeled(r.prediction, r.label, r.segments);
  for (const segments of expired) builder.addExpired(segments);
  return builder.build();
}

/**
 * The review's window: 200 predictions of a classifier all scored 0.55, labels −1 and +1 half each
 * (its whole-window row first).
 */
export function plusMinusOneWindow(): PerformanceRow[] {
  return computeWindow({
    task: 'classification',
    threshold: 0.5,
    segmentFeatures: [],
    maxSegments: 5,
    window: windowOf(
      0,
      Array.from({ length: 200 }, (_, i) => ({ prediction: 0.55, label: i % 2 === 0 ? -1 : 1, segments: [] })),
    ),
    pending: 0,
  });
}
