import { DEFAULT_EVENT_TIME_BOUNDS, DriftlineError, type Logger, silentLogger } from '@driftline/core';
import {
  DEFAULT_THRESHOLDS,
  type PartialMessage,
  type PartialsMessage,
  type ReferenceSet,
  referenceSet,
} from '@driftline/drift';
import { expectationSet } from '@driftline/quality';
import type { DriftAlert } from '@driftline/schemas';
import { buildNumericProfile } from '@driftline/stats';
import {
  chTime,
  type DataQualityRow,
  type DriftQuarantineRow,
  type DriftWindowRow,
  type DriftWindowStore,
  type ProgressStore,
  type ReferenceStore,
} from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { mergeProcessor } from '../src/merge-stage.js';
import { ReferenceCache } from '../src/reference-cache.js';
import { memoryProgress, stageOnePartialsOfW0, writtenReferences } from './support.js';

/** Wall clock: windows of 1 s just before it. */
const NOW = Date.UTC(2024, 11, 2, 12, 0, 0);
const W0 = NOW - 10_000;
const IDLE_MS = 60_000;

// A reference re-stored: source 0's instance still summarises W0 on R1, sources 1 and 2 on R2.
const r1 = referenceSet('s', 'v1', new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i))]]));
const r2 = referenceSet(
  's',
  'v1',
  new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i + 0.5))]]),
);
/** A third re-store, for a window on three references. */
const r3 = referenceSet(
  's',
  'v1',
  new Map([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i + 0.25))]]),
);
const storeWith = (ref: ReferenceSet): ReferenceStore => ({
  save: async () => {},
  latest: async () => ref,
  byId: async (id) => [r1, r2, r3].find((r) => r.referenceId === id),
  newest: async () => [ref],
  catalog: async () => [{ model: ref.model, version: ref.version, referenceId: ref.referenceId }],
});
const expectations = expectationSet([
  {
    feature: 'x',
    type: 'double',
    maxTypeMismatch: 0,
    maxNullRate: 0.2,
    range: { min: 0, max: 100, maxShareOutside: 1 },
  },
]);

/** The real stage one of source `partition` (of three) on `ref`: W0 gets `events` events, then W1 opens (W0 closes). */
function sourceOn(ref: ReferenceSet, partition: number, events: number): Promise<PartialsMessage[]> {
  const xs = Array.from({ length: events }, (_, i) => (i * 7) % 100);
  const references = new ReferenceCache(storeWith(ref));
  return stageOnePartialsOfW0({ references, expectations, partition, sourcePartitions: 3, xs, w0: W0, now: NOW });
}

/** Source 0's marker that it closed W1 too: heard again, and past W0. */
function laterMarker(source: readonly PartialsMessage[]): PartialsMessage {
  const closed = source.find((m) => m.type === 'closed')!;
  return { ...closed, windowStart: W0 + 1000, windowEnd: W0 + 2000, closedUntil: W0 + 2000, models: [] };
}

/** drift_windows in memory: what it holds, and the reference ids it holds of a (model, version, window). */
function memoryDriftWindows(): DriftWindowStore & { readonly rows: DriftWindowRow[] } {
  const rows: DriftWindowRow[] = [];
  return {
    rows,
    insert: async (batch) => void rows.push(...batch),
    writtenReferences: async (model, version, windowStart, windowEnd) =>
      writtenReferences(rows, model, version, windowStart, windowEnd),
  };
}

/** A merge-stage instance over shared stores (a restart is a new instance on the same stores). */
function mergeInstance(stores: {
  driftWindows: DriftWindowStore;
  progress: ProgressStore;
  clock: () => number;
  quarantined?: DriftQuarantineRow[];
  quality?: DataQualityRow[];
  errors?: Array<[object, string | undefined]>;
}) {
  const alerts: DriftAlert[] = [];
  const warnings: Array<[object, string | undefined]> = [];
  const logger: Logger = {
    ...silentLogger,
    warn: (obj, msg) => void warnings.push([obj, msg]),
    error: (obj, msg) => void stores.errors?.push([obj, msg]),
    child: () => logger,
  };
  const quality = stores.quality;
  const processor = mergeProcessor({
    driftWindows: stores.driftWindows,
    quarantine: { insert: async (batch) => void stores.quarantined?.push(...batch) },
    references: new ReferenceCache(storeWith(r2)),
    progress: stores.progress,
    group: 'g-merge',
    idleTimeoutMs: IDLE_MS,
    windowMs: 1000,
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    thresholds: DEFAULT_THRESHOLDS,
    primary: 'psi',
    alertShare: 0.5,
    alertMinEvents: 1,
    logger,
    now: stores.clock,
    sendAlerts: async (batch) => void alerts.push(...batch),
    ...(quality === undefined
      ? {}
      : { quality: { expectations, store: { insert: async (b) => void quality.push(...b) } } }),
  });
  let offset = 0;
  const consume = (messages: readonly PartialsMessage[]) =>
    processor.process(
      messages.map((value) => ({
        record: {
          topic: 'dp',
          partition: 0,
          offset: String(offset++),
          key: null,
          value: null,
          headers: {},
          timestamp: 0,
        },
        value,
      })),
      { topic: 'dp', partition: 0, highWatermark: '0' },
    );
  return { processor, consume, alerts, warnings };
}

/** Progress whose next `failures` saves fail as an outage would. */
function failingSaves(progress: ProgressStore, failures: number): ProgressStore {
  let left = failures;
  return {
    load: progress.load,
    save: async (...args) => {
      if (left-- > 0) throw new DriftlineError('SINK_UNAVAILABLE', 'clickhouse: timeout', { retriable: true });
      return progress.save(...args);
    },
  };
}

const w0Psi = (rows: readonly DriftWindowRow[]) =>
  rows.filter((r) => r.window_start === chTime(W0) && r.feature === 'x' && r.method === 'psi');
const nameOf = (id: string) => ['R1', 'R2', 'R3'][[r1, r2, r3].findIndex((r) => r.referenceId === id)] ?? id;

/** Every alert id was sent with one content only (a re-send is the same alert). */
function expectOneAlertPerId(alerts: readonly DriftAlert[]): void {
  const byId = new Map<string, DriftAlert[]>();
  for (const a of alerts) byId.set(a.alert_id, [...(byId.get(a.alert_id) ?? []), a]);
  for (const same of byId.values()) for (const a of same) expect(a).toEqual(same[0]);
}

describe('merge stage: a split window keeps the reference its drift was first written on', () => {
  it('across a retry: the idle source partial that arrives before it makes R2 the larger part, drift stays on R1', async () => {
    const src0 = await sourceOn(r1, 0, 10); // R1, 10 events
    const src1 = await sourceOn(r2, 1, 6); // R2, 6 events
    const src2 = await sourceOn(r2, 2, 6); // R2, 6 events, late to the merge
    let clock = NOW;
    const driftWindows = memoryDriftWindows();
    const merge = mergeInstance({ driftWindows, progress: failingSaves(memoryProgress(), 1), clock: () => clock });
    await merge.consume([...src0, ...src1]);
    clock = NOW + IDLE_MS - 1000;
    await merge.consume([laterMarker(src0)]);
    clock = NOW + IDLE_MS + 1000;
    await merge.processor.tick(); // source 2 idle: W0 completes on R1 (10 vs 6), rows written, the save fails
    expect(w0Psi(driftWindows.rows).map((r) => [nameOf(r.reference_id), r.events])).toEqual([['R1', 10]]);
    clock = NOW + IDLE_MS + 2000;
    await merge.consume(src2); // W0 again, now R1 10 vs R2 12: the retry writes it

    const psi = w0Psi(driftWindows.rows);
    expect(psi).toHaveLength(2);
    expect(new Set(psi.map((r) => nameOf(r.reference_id)))).toEqual(new Set(['R1']));
    expect(new Set(driftWindows.rows.map((r) => nameOf(r.reference_id)))).toEqual(new Set(['R1']));
    // The second attempt did see R2 as the larger part: the choice stuck, not the events.
    const split = merge.warnings.filter(([, msg]) => msg?.includes('different references')).map(([obj]) => obj);
    expect(split).toEqual([
      expect.objectContaining({
        measured: { referenceId: r1.referenceId, events: 10 },
        setAside: [{ referenceId: r2.referenceId, events: 12 }],
      }),
    ]);
    expectOneAlertPerId(merge.alerts);
  });

  it('across a crash between the insert and the progress save, then a replay by a new instance', async () => {
    const src0 = await sourceOn(r1, 0, 10);
    const src1 = await sourceOn(r2, 1, 6);
    const src2 = await sourceOn(r2, 2, 6);
    let clock = NOW;
    const driftWindows = memoryDriftWindows();
    const progress = memoryProgress();
    const first = mergeInstance({ driftWindows, progress: failingSaves(progress, 1), clock: () => clock });
    await first.consume([...src0, ...src1]);
    clock = NOW + IDLE_MS - 1000;
    await first.consume([laterMarker(src0)]);
    clock = NOW + IDLE_MS + 1000;
    await first.processor.tick(); // rows on R1 written, progress not saved: then the process dies
    expect(await progress.load('merge', 'g-merge', 'dp', 0)).toBeUndefined();

    // Nothing was committed: the new owner replays every message of W0, source 2's partial included.
    clock = NOW + IDLE_MS + 5000;
    const second = mergeInstance({ driftWindows, progress, clock: () => clock });
    await second.consume([...src0, ...src1, laterMarker(src0), ...src2]);
    expect(await progress.load('merge', 'g-merge', 'dp', 0)).toMatchObject({ position: W0 });

    const psi = w0Psi(driftWindows.rows);
    expect(psi).toHaveLength(2);
    expect(new Set(driftWindows.rows.map((r) => nameOf(r.reference_id)))).toEqual(new Set(['R1']));
    const split = second.warnings.filter(([, msg]) => msg?.includes('different references')).map(([obj]) => obj);
    expect(split).toEqual([expect.objectContaining({ setAside: [{ referenceId: r2.referenceId, events: 12 }] })]);
    expectOneAlertPerId([...first.alerts, ...second.alerts]);
  });

  it('a window written on neither of its parts is measured as before (most events)', async () => {
    const driftWindows = memoryDriftWindows();
    const merge = mergeInstance({ driftWindows, progress: memoryProgress(), clock: () => NOW });
    await merge.consume([...(await sourceOn(r1, 0, 10)), ...(await sourceOn(r2, 1, 6)), ...(await sourceOn(r2, 2, 6))]);
    expect(w0Psi(driftWindows.rows).map((r) => [nameOf(r.reference_id), r.events])).toEqual([['R2', 12]]);
  });
});

describe('merge stage: a set-aside part whose quality cannot be merged', () => {
  it('is quarantined alone: the measured drift and the quality of the other parts are written', async () => {
    /** Source 2's quality section of W0 (on R3) corrupted (a negative count): poison when merged. */
    const corrupt = (m: PartialsMessage): PartialsMessage => {
      const x = m.type === 'partial' ? m.quality?.features.x : undefined;
      if (m.type !== 'partial' || m.quality === undefined || x === undefined) return m;
      return { ...m, quality: { ...m.quality, features: { x: { ...x, nulls: -1 } } } } satisfies PartialMessage;
    };
    const driftWindows = memoryDriftWindows();
    const quarantined: DriftQuarantineRow[] = [];
    const quality: DataQualityRow[] = [];
    const errors: Array<[object, string | undefined]> = [];
    const merge = mergeInstance({
      driftWindows,
      progress: memoryProgress(),
      clock: () => NOW,
      quarantined,
      quality,
      errors,
    });
    await merge.consume([
      ...(await sourceOn(r1, 0, 10)), // measured: 10 vs 4 and 2
      ...(await sourceOn(r2, 1, 4)),
      ...(await sourceOn(r3, 2, 2)).map(corrupt),
    ]);
    expect(new Set(w0Psi(driftWindows.rows).map((r) => `${nameOf(r.reference_id)}:${r.events}`))).toEqual(
      new Set(['R1:10']),
    );
    // Quality over the parts that merge: R1's 10 events and R2's 4 (R3's corrupt section left out).
    expect(quality.length).toBeGreaterThan(0);
    expect(new Set(quality.map((r) => r.events))).toEqual(new Set([14]));
    // The failing part on its own: a row naming its reference and events, an error log, no quarantine alert.
    expect(quarantined.map((r) => [nameOf(r.reference_id), r.events, r.code])).toEqual([['R3', 2, 'DECODE_FAILED']]);
    expect(errors).toEqual([
      [expect.objectContaining({ referenceId: r3.referenceId, events: 2, windowStart: W0 }), expect.any(String)],
    ]);
    expect(merge.alerts.filter((a) => a.kind === 'DRIFT_WINDOW_QUARANTINED')).toEqual([]);
  });
});
