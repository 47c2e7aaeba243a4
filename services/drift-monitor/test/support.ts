import { DEFAULT_EVENT_TIME_BOUNDS, type Logger } from '@driftline/core';
import { decodePartials, type OutboundPartials, type PartialsMessage, type ReferenceSet } from '@driftline/drift';
import type { DecodedRecord } from '@driftline/kafka';
import type { ExpectationSet } from '@driftline/quality';
import type { PredictionEvent } from '@driftline/schemas';
import {
  chTime,
  type DriftWindowRow,
  type Progress,
  type ProgressStore,
  type ReferenceStore,
} from '@driftline/warehouse';
import type { BatchPair, ReferenceCache } from '../src/reference-cache.js';
import { stageOneProcessor } from '../src/stage-one.js';

/** A prediction of `model` / `version` at `eventTime` (feature x = 5) as stage one reads it, at `offset` of p/0. */
export function predictionRecord(
  model: string,
  version: string,
  eventTime: number,
  offset: number,
): DecodedRecord<PredictionEvent> {
  return {
    record: { topic: 'p', partition: 0, offset: String(offset), key: null, value: null, headers: {}, timestamp: 0 },
    value: {
      prediction_id: `p${offset}`,
      model,
      model_version: version,
      entity_id: 'e',
      event_time: eventTime,
      features: { x: 5 },
      prediction: 0,
      predicted_class: null,
    },
  };
}

/** A reference store that holds one reference set and names it for every model and version. */
export function storeOf(ref: ReferenceSet): ReferenceStore {
  return {
    save: async () => {},
    latest: async () => ref,
    byId: async () => ref,
    newest: async () => [ref],
    catalog: async () => [{ model: ref.model, version: ref.version, referenceId: ref.referenceId }],
  };
}

/** A reference store in memory: the last set saved for a pair is its latest; every load counted. */
export function memoryReferenceStore(initial: ReferenceSet[]) {
  const saved = [...initial];
  const calls = { latest: 0, catalog: 0 };
  const latestOf = () => new Map(saved.map((s) => [`${s.model}/${s.version}`, s]));
  const store: ReferenceStore = {
    save: async (s) => {
      saved.push(s);
    },
    latest: async (model, version) => {
      calls.latest++;
      return latestOf().get(`${model}/${version}`);
    },
    byId: async (id) => saved.find((s) => s.referenceId === id),
    newest: async (limit) => (limit > 0 ? saved.slice(-limit).reverse() : []), // slice(-0) is every set
    catalog: async () => {
      calls.catalog++;
      return [...latestOf().values()].map((s) => ({ model: s.model, version: s.version, referenceId: s.referenceId }));
    },
  };
  return { store, calls, saved };
}

/** drift_progress in memory: what a stage saved, loaded again by (stage, group, topic, partition). */
export function memoryProgress(): ProgressStore {
  const saved = new Map<string, Progress>();
  return {
    load: async (s, g, t, p) => saved.get([s, g, t, p].join('/')),
    save: async (s, g, t, p, progress) => {
      saved.set([s, g, t, p].join('/'), progress);
    },
  };
}

/**
 * Stage one in one-minute windows over one source partition on `references`, its events given
 * decoded (as `predictionRecord` makes them); what it emits is kept in `sent`.
 */
export function minuteStageOne(
  references: ReferenceCache,
  options: {
    readonly latenessMs: number;
    readonly now: () => number;
    readonly progress?: ProgressStore;
    readonly maxBorrowedVersions?: number;
  },
) {
  const sent: OutboundPartials[] = [];
  const stageOne = stageOneProcessor({
    spec: { sizeMs: 60_000, latenessMs: options.latenessMs },
    references,
    progress: options.progress ?? memoryProgress(),
    group: 'g',
    sourceTopic: 'p',
    sourcePartitions: 1,
    mergePartitions: 1,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    now: options.now,
    ...(options.maxBorrowedVersions === undefined ? {} : { maxBorrowedVersions: options.maxBorrowedVersions }),
    decode: async () => {
      throw new Error('not used: events come decoded');
    },
    emit: async (messages) => {
      sent.push(...messages);
    },
  });
  return { stageOne, sent };
}

/**
 * W0's partials from the real stage one of source `partition` (of `sourcePartitions`), its windows
 * opened on what `references` resolves: model s/v1 with feature `x` = `xs` in W0 = [w0, w0 + 1 s)
 * from w0 + 100 ms, then one event at w0 + 1.1 s that closes W0.
 */
export async function stageOnePartialsOfW0(options: {
  readonly references: ReferenceCache;
  readonly expectations: ExpectationSet;
  readonly partition: number;
  readonly sourcePartitions: number;
  readonly xs: ReadonlyArray<number | null>;
  readonly w0: number;
  readonly now: number;
}): Promise<PartialsMessage[]> {
  const { partition, w0, xs } = options;
  const out: PartialsMessage[] = [];
  const stageOne = stageOneProcessor({
    spec: { sizeMs: 1000, latenessMs: 0 },
    references: options.references,
    progress: memoryProgress(),
    group: 'g',
    sourceTopic: 'p',
    sourcePartitions: options.sourcePartitions,
    mergePartitions: 1,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    expectations: options.expectations,
    now: () => options.now,
    decode: async () => {
      throw new Error('not used');
    },
    emit: async (messages) => {
      for (const m of messages) out.push(decodePartials(m.value));
    },
  });
  const times = [...xs.map((_, i) => w0 + 100 + i), w0 + 1100];
  const items: DecodedRecord<PredictionEvent>[] = times.map((t, i) => ({
    record: { topic: 'p', partition, offset: String(i), key: null, value: null, headers: {}, timestamp: 0 },
    value: {
      prediction_id: `p${partition}-${i}`,
      model: 's',
      model_version: 'v1',
      entity_id: 'e',
      event_time: t,
      features: { x: i < xs.length ? xs[i]! : 1 },
      prediction: 0,
      predicted_class: null,
    },
  }));
  await stageOne.process(items, { topic: 'p', partition, highWatermark: '0' });
  return out.filter((m) => m.windowStart === w0);
}

/** The reference ids `rows` hold for a (model, version, window): drift_windows' own answer, in memory. */
export function writtenReferences(
  rows: readonly DriftWindowRow[],
  model: string,
  version: string,
  windowStart: number,
  windowEnd: number,
) {
  const ids = rows
    .filter(
      (r) =>
        r.model === model &&
        r.version === version &&
        r.window_start === chTime(windowStart) &&
        r.window_end === chTime(windowEnd),
    )
    .map((r) => r.reference_id);
  return [...new Set(ids)].sort();
}

/** A batch's (model, version) pairs for `ReferenceCache.ensure`, each with events from `earliestWindowStart` on. */
export function batchPairs(pairs: ReadonlyArray<readonly [string, string]>, earliestWindowStart: number): BatchPair[] {
  return pairs.map(([model, version]) => ({ model, version, earliestWindowStart }));
}

/** A logger that keeps its warnings. */
export function warnings(): {
  logger: Logger;
  lines: Array<{ obj: Record<string, unknown>; msg: string | undefined }>;
} {
  const lines: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    error: () => {},
    warn: (obj, msg) => {
      lines.push({ obj: obj as Record<string, unknown>, msg });
    },
    child: () => logger,
  };
  return { logger, lines };
}
