import { type EventTimeBounds, type Logger, toDriftlineError } from '@driftline/core';
import {
  buildAlerts,
  type CompletedWindow,
  checkPartialsTime,
  type DriftThresholds,
  decodePartials,
  featureResults,
  MergeState,
  mergeGroup,
  type PartialsMessage,
  type PrimaryMethod,
  primaryMethodFor,
  restoredFrontierProblem,
  windowVerdict,
} from '@driftline/drift';
import type { BatchProcessor } from '@driftline/kafka';
import type { DriftAlert } from '@driftline/schemas';
import { chTime, type DriftWindowRow, type DriftWindowStore, type ProgressStore } from '@driftline/warehouse';
import type { DriftMetrics } from './metrics.js';
import type { ReferenceCache } from './reference-cache.js';

export interface MergeDeps {
  readonly driftWindows: DriftWindowStore;
  readonly references: ReferenceCache;
  readonly progress: ProgressStore;
  readonly group: string;
  readonly idleTimeoutMs: number;
  /** Window size: a restored window start is checked against the event-time bounds widened by it. */
  readonly windowMs: number;
  /** Accepted event times: a partials message or a restored window outside them is refused. */
  readonly eventTime: EventTimeBounds;
  readonly thresholds: DriftThresholds;
  readonly primary: PrimaryMethod;
  readonly alertShare: number;
  readonly sendAlerts: (alerts: readonly DriftAlert[]) => Promise<void>;
  readonly logger: Logger;
  readonly metrics?: DriftMetrics;
  readonly now?: () => number;
}

const finiteOrNull = (v: number | null): number | null => (v === null || !Number.isFinite(v) ? null : v);

/** Results of one completed window: drift_windows rows and alerts. Pure given the references. */
export async function evaluateWindow(
  w: CompletedWindow,
  deps: Pick<MergeDeps, 'references' | 'thresholds' | 'primary' | 'alertShare' | 'logger' | 'metrics'>,
  computedAt: number,
): Promise<{ rows: DriftWindowRow[]; alerts: DriftAlert[] }> {
  const rows: DriftWindowRow[] = [];
  const alerts: DriftAlert[] = [];
  for (const group of w.groups) {
    const ref = await deps.references.byReferenceId(group.referenceId);
    if (ref === undefined) {
      deps.logger.error(
        { referenceId: group.referenceId, model: group.model },
        'reference of a partial is gone; window skipped',
      );
      continue;
    }
    const merged = mergeGroup(group, ref);
    const kinds = new Map<string, 'numeric' | 'categorical'>();
    const results = [];
    for (let i = 0; i < ref.features.length; i++) {
      const feature = ref.features[i]!;
      const profile = ref.profiles[i]!;
      kinds.set(feature, profile.kind);
      const summary = merged.get(feature);
      if (summary !== undefined) results.push(...featureResults(feature, profile, summary, deps.thresholds));
    }
    for (const r of results) {
      rows.push({
        model: group.model,
        version: group.version,
        reference_id: group.referenceId,
        feature: r.feature,
        window_start: chTime(w.windowStart),
        window_end: chTime(w.windowEnd),
        method: r.method,
        statistic: r.statistic,
        p_value: finiteOrNull(r.pValue),
        threshold: r.threshold,
        drifted: r.drifted ? 1 : 0,
        reference_size: r.referenceSize,
        current_size: r.currentSize,
        events: group.events,
        late_events: group.late,
        error_bound: finiteOrNull(r.errorBound),
        source_partitions: w.sourcePartitions,
        idle_partitions: w.idle.length,
        computed_at: chTime(computedAt),
      });
      if (r.method === primaryMethodFor(kinds.get(r.feature) ?? 'numeric', deps.primary)) {
        deps.metrics?.statistic.set({ model: group.model, feature: r.feature }, r.statistic);
        deps.metrics?.drifted.set({ model: group.model, feature: r.feature }, r.drifted ? 1 : 0);
      }
    }
    const verdict = windowVerdict(results, kinds, deps.primary, deps.alertShare);
    alerts.push(
      ...buildAlerts(
        {
          model: group.model,
          version: group.version,
          referenceId: group.referenceId,
          windowStart: w.windowStart,
          windowEnd: w.windowEnd,
          events: group.events,
          lateEvents: group.late,
        },
        verdict,
      ),
    );
  }
  return { rows, alerts };
}

/**
 * Stage 2: merges the partials of every source partition per (model, version, window), writes
 * drift_windows and alerts, records the last completed window, then lets the commit pass.
 */
export function mergeProcessor(deps: MergeDeps): BatchProcessor<PartialsMessage> & { tick(): Promise<void> } {
  const now = deps.now ?? Date.now;
  const states = new Map<string, MergeState>();
  const locks = new Map<string, Promise<unknown>>();
  const keyOf = (topic: string, partition: number) => `${topic}/${partition}`;

  function locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = locks.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    locks.set(
      key,
      run.catch(() => {}),
    );
    return run;
  }

  async function completeReady(topic: string, partition: number, state: MergeState): Promise<void> {
    const t = now();
    const { complete, stale } = state.ready(t);
    if (stale.length > 0) {
      state.dropStale(stale);
      deps.metrics?.partialsDropped.inc({ reason: 'stale_fragment' }, stale.length);
    }
    if (complete.length === 0) return;
    const rows: DriftWindowRow[] = [];
    const alerts: DriftAlert[] = [];
    for (const w of complete) {
      const out = await evaluateWindow(w, deps, t);
      rows.push(...out.rows);
      alerts.push(...out.alerts);
    }
    // The warehouse classifies a failure: unavailable → retried, a rejected row → the DLQ.
    if (rows.length > 0) await deps.driftWindows.insert(rows);
    if (alerts.length > 0) await deps.sendAlerts(alerts);
    const last = complete[complete.length - 1]!;
    await deps.progress.save('merge', deps.group, topic, partition, { position: last.windowStart, offset: 0 });
    state.markDone(complete);
    const done = now();
    for (const w of complete) deps.metrics?.mergeLatency.observe(Math.max(0, done - w.firstSeenAt) / 1000);
    deps.metrics?.windowsMerged.inc(complete.length);
  }

  return {
    decode: (record) => checkPartialsTime(decodePartials(record.value), now(), deps.eventTime),
    process(items, ctx) {
      const key = keyOf(ctx.topic, ctx.partition);
      return locked(key, async () => {
        const last = items[items.length - 1];
        if (last === undefined) return;
        let state = states.get(key);
        if (state === undefined) {
          const restored = await deps.progress.load('merge', deps.group, ctx.topic, ctx.partition);
          let completedUpTo = restored?.position;
          const problem =
            completedUpTo === undefined
              ? undefined
              : restoredFrontierProblem(completedUpTo, deps.windowMs, now(), deps.eventTime);
          if (problem !== undefined) {
            // Written before event times were bounded: every real window would count as completed.
            deps.logger.error(
              { topic: ctx.topic, partition: ctx.partition, position: completedUpTo },
              `restored drift progress refused and not used (merge): ${problem}`,
            );
            completedUpTo = undefined;
          }
          state = new MergeState({ idleTimeoutMs: deps.idleTimeoutMs }, now(), completedUpTo);
          states.set(key, state);
        }
        const t = now();
        for (const item of items) {
          const result = state.add(item.value, Number(item.record.offset), t);
          if (result !== 'accepted') deps.metrics?.partialsDropped.inc({ reason: result });
          if (result === 'after_completion' && item.value.type === 'partial' && item.value.events > 0) {
            deps.logger.warn(
              {
                model: item.value.model,
                windowStart: item.value.windowStart,
                source: item.value.source.partition,
                events: item.value.events,
              },
              'partial arrived after its window completed without its source (idle); its events are not merged',
            );
          }
        }
        await completeReady(ctx.topic, ctx.partition, state);
        return { commitOffset: String(state.commitOffset(Number(last.record.offset) + 1)) };
      });
    },
    revoked(partitions) {
      for (const p of partitions) states.delete(keyOf(p.topic, p.partition));
    },
    /** Idleness is a matter of processing time: re-check pending windows even when nothing arrives. */
    async tick() {
      for (const [key, state] of [...states.entries()]) {
        const slash = key.lastIndexOf('/');
        await locked(key, () => completeReady(key.slice(0, slash), Number(key.slice(slash + 1)), state)).catch(
          (error: unknown) =>
            deps.logger.warn({ err: toDriftlineError(error).message }, 'merge tick failed; will retry'),
        );
      }
    },
  };
}
