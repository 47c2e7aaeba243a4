import type { ReportData } from './types.js';

/**
 * The version in production at the end of the range — the one rule of the warehouse reader (which
 * reads the drift of that version first) and of the page (which charts it first and names it):
 * `productionVersion` when given (the reader's reading of every transition up to `to`), else the
 * range's timeline — its last PRODUCTION stage, undone by a ROLLED_BACK of that version. The
 * trainer's PROMOTED counts only for a model without stage transitions (rollout `direct`): in a
 * staged rollout it means "passed the offline gate, into shadow", and a version later REJECTED
 * showed as promoted.
 */
export function productionVersion(d: Pick<ReportData, 'productionVersion' | 'retrain'>): string | undefined {
  if (d.productionVersion !== undefined) return d.productionVersion;
  const events = [...d.retrain].sort((a, b) => a.time - b.time);
  const stages = events.filter((e) => e.source === 'stage');
  if (stages.length === 0) return events.filter((e) => e.source === 'model' && e.kind === 'PROMOTED').at(-1)?.version;
  let production: string | undefined;
  for (const e of stages) {
    if (e.kind === 'PRODUCTION') production = e.version;
    else if (e.kind === 'ROLLED_BACK' && e.version === production) production = e.previous ?? undefined;
  }
  return production;
}
