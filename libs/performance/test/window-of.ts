import { type WindowColumns, WindowColumnsBuilder } from '../src/index.js';

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
