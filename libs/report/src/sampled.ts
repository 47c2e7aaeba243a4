// Windows whose metrics come from a sample of their labels (the label-joiner reads a window with
// more than DRIFTLINE_JOINER_MAX_WINDOW_ROWS labels as a deterministic uniform sample and says so in
// performance_windows.sampled_labels): the report and the model card mark them where live
// performance is read, with one line saying what the mark means.
import { escapeHtml } from './svg.js';
import type { PerformancePoint } from './types.js';

/** What a "sampled" mark means, one line under the table or chart that shows it. */
export const SAMPLED_EXPLANATION =
  'sampled: the window held more labels than the label-joiner’s DRIFTLINE_JOINER_MAX_WINDOW_ROWS, so its metrics and business outcome come from a deterministic uniform sample of them; its counts and label coverage are exact.';

/** True for a window read as a sample (`sampled` > 0). */
export const isSampled = (p: Pick<PerformancePoint, 'sampled'>): boolean => (p.sampled ?? 0) > 0;

/** The mark of a sampled window in a table cell ("sampled N of M labels"), '' for an exact one. */
export const sampledTag = (p: Pick<PerformancePoint, 'sampled' | 'labeled'>): string =>
  isSampled(p) ? ` <span class="tag sampled">sampled ${p.sampled} of ${p.labeled} labels</span>` : '';

/** The explanation under a table, when one of its rows is marked. */
export const sampledNote = (rows: readonly Pick<PerformancePoint, 'sampled'>[]): string =>
  rows.some(isSampled) ? `<p class="no-data">${escapeHtml(SAMPLED_EXPLANATION)}</p>` : '';
