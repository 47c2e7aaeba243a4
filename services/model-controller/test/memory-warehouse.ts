import type { PairSource } from '@driftline/policy';
import { SeededRandom } from '@driftline/test-support/random';
import {
  LABEL_CLOCK_QUORUM,
  type ModelTransitionStore,
  type TransitionRow,
  type VersionArtifacts,
} from '@driftline/warehouse';
import type { PairReader } from '../src/controller.js';

// The model-controller's ClickHouse tables in memory, read as its queries define them (unit tests:
// controller.test.ts, and the time model's world, time-world.ts).

/** model_transitions in memory; `failing`: every call fails as with ClickHouse down. */
export class MemoryTransitions implements ModelTransitionStore {
  readonly rows = new Map<string, TransitionRow>();
  failing = false;
  constructor(private readonly log: string[]) {}
  async record(rows: readonly TransitionRow[]) {
    if (this.failing) throw new Error('clickhouse down');
    for (const r of rows) this.rows.set(`${r.model}/${r.version}/${r.to_stage}`, r);
    this.log.push(...rows.map((r) => `record ${r.version}:${r.to_stage}`));
  }
  async history(model: string) {
    if (this.failing) throw new Error('clickhouse down');
    return [...this.rows.values()].filter((r) => r.model === model).sort((a, b) => a.at - b.at);
  }
  async models() {
    if (this.failing) throw new Error('clickhouse down');
    return [...new Set([...this.rows.values()].map((r) => r.model))].sort();
  }
  async artifacts(_model: string, version: string): Promise<VersionArtifacts | undefined> {
    return {
      request_id: `req-${version}`,
      artifact_uri: `file:///m/${version}/model.json`,
      reference_uri: null,
      metrics: { roc_auc: 0.8 },
    };
  }
}

/** A labelled row as labeled_predictions holds it: who answered, in which role, and every version's score. */
export interface LabelledRow {
  readonly id: string;
  readonly answered: string;
  readonly role: 'production' | 'canary';
  readonly predictionTime: number;
  readonly labelTime: number;
  readonly label: number;
  readonly scores: Readonly<Record<string, number>>;
  /** Versions that were to score it and could not, with their roles (predictions.v1 `unscored`). */
  readonly unscored?: Readonly<Record<string, string>>;
  /** When the label-joiner joined it (`joined_at`); by default, its label's arrival at its newest time. */
  readonly joinedAt?: number;
}

/** FNV-1a (32 bits) of an id: the memory warehouse's stand-in for the warehouse's cityHash64. */
function idHash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * The warehouse's reads over `rows`, as its queries define them (readPairsCounted, labelClock,
 * answeredSince). `rows` are in the order they arrived (appended as the label-joiner writes them):
 * the paired read keeps that order, as the warehouse's orders by `joined_at` (with `matureUntil`:
 * the rows predicted up to it, by prediction time then id; with `arrival`: the rows joined before
 * its `before`, by bucket of `joinedAt`, then a hash of the id; `newestJoined` of all of them). A read naming no
 * `answeredBy` gets every answered row, as the warehouse's does: what a controller that names none
 * compared. `reads`: each paired read's source.
 */
export function labelledTable(rows: LabelledRow[]) {
  const reads: string[] = [];
  const reader: PairReader = {
    readPairs: async (q) => {
      const source = q.answeredBy as PairSource | undefined;
      reads.push(source === undefined ? 'any' : `${source.version}/${source.role}`);
      // As the warehouse's query: a canary's rows include those of its share it could not answer
      // (production answered); in its comparison a version unscored on a row — the canary of its
      // share, production beside it — is paired with a null score. A shadow's or a watch's pairs are
      // scored by both.
      const unscoredAs = (r: LabelledRow, v: string) => r.unscored?.[v];
      const canary = source?.role === 'canary';
      const side = (r: LabelledRow, v: string, role: string) =>
        r.scores[v] !== undefined ||
        (source === undefined ? unscoredAs(r, v) !== undefined : canary && unscoredAs(r, v) === role);
      const joinedAt = (r: LabelledRow) => r.joinedAt ?? Math.max(r.labelTime, r.predictionTime);
      const byId = (a: LabelledRow, b: LabelledRow) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      const arrival = q.matureUntil === undefined ? q.arrival : undefined;
      const all = rows.filter(
        (r) =>
          (source === undefined ||
            (r.answered === source.version && r.role === source.role) ||
            (canary && r.role === 'production' && unscoredAs(r, source.version) === 'canary')) &&
          r.predictionTime >= q.from &&
          side(r, q.incumbent, 'production') &&
          side(r, q.challenger, 'canary') &&
          (q.matureUntil === undefined || r.predictionTime <= q.matureUntil),
      );
      // With arrival (arrival_bucket): the rows of closed buckets, by bucket, then a hash of the id
      // (FNV-1a here, cityHash64 in the warehouse: any hash of the id alone), then the id.
      const read = arrival === undefined ? all : all.filter((r) => joinedAt(r) < arrival.before);
      const waiting = arrival === undefined ? [] : all.filter((r) => !(joinedAt(r) < arrival.before));
      const bucket = (r: LabelledRow) => Math.floor(joinedAt(r) / (arrival?.bucketMs ?? 1));
      const pairs = read
        // With matureUntil (label_maturity): by prediction, then id, as the warehouse reads them.
        .sort((a, b) =>
          q.matureUntil !== undefined
            ? a.predictionTime - b.predictionTime || byId(a, b)
            : arrival !== undefined
              ? bucket(a) - bucket(b) || idHash(a.id) - idHash(b.id) || byId(a, b)
              : 0,
        )
        .slice(0, q.limit)
        .map((r) => ({
          predictionId: r.id,
          predictionTime: r.predictionTime,
          labelTime: r.labelTime,
          joinedAt: r.joinedAt ?? Math.max(r.labelTime, r.predictionTime),
          label: r.label,
          incumbent: r.scores[q.incumbent] ?? null,
          challenger: r.scores[q.challenger] ?? null,
        }));
      return {
        pairs,
        unusable: { labelNotBinary: 0, scoreNotProbability: 0 },
        // As the warehouse's count: the newest arrival of every pair, read or not.
        ...(all.length === 0 ? {} : { newestJoined: all.reduce((m, r) => Math.max(m, joinedAt(r)), 0) }),
        ...(waiting.length === 0
          ? {}
          : { waitingFrom: waiting.reduce((m, r) => Math.min(m, r.predictionTime), Number.POSITIVE_INFINITY) }),
      };
    },
    labelClock: async (_model, now, notAfter) => {
      const within = rows.filter((r) => r.labelTime <= notAfter && r.predictionTime <= notAfter);
      if (within.length === 0) return undefined;
      // As the warehouse's query: the newest at or before the wall clock, or the
      // LABEL_CLOCK_QUORUM-th newest within notAfter when later.
      const clock = (time: (r: LabelledRow) => number) => {
        const past = within.filter((r) => r.labelTime <= now && r.predictionTime <= now).map(time);
        const all = within.map(time).sort((a, b) => b - a);
        const quorum = all[Math.min(LABEL_CLOCK_QUORUM, all.length) - 1]!;
        return Math.max(past.length === 0 ? Number.NEGATIVE_INFINITY : Math.max(...past), quorum);
      };
      return { labelTime: clock((r) => r.labelTime), predictionTime: clock((r) => r.predictionTime) };
    },
    answeredSince: async (_model, version, since) =>
      rows.some((r) => r.answered === version && r.role === 'production' && r.predictionTime >= since),
    // As the warehouse's query, with exact medians: labelled rows predicted since `since`, by class.
    labelDelays: async (_model, since) => {
      const of = (label: number) =>
        rows
          .filter((r) => r.label === label && r.predictionTime >= since)
          .map((r) => r.labelTime - r.predictionTime)
          .sort((a, b) => a - b);
      const median = (d: number[]) =>
        d.length === 0
          ? Number.NaN
          : d.length % 2 === 1
            ? d[(d.length - 1) / 2]!
            : (d[d.length / 2 - 1]! + d[d.length / 2]!) / 2;
      const positive = of(1);
      const negative = of(0);
      return {
        positives: positive.length,
        negatives: negative.length,
        positiveMedianMs: median(positive),
        negativeMedianMs: median(negative),
      };
    },
  };
  return { reader, reads };
}

/** `n` labelled rows answered by `answered` as `role`, predicted from `from` one a second, labelled `delay` later; `quality` per version scored. */
export function batch(
  prefix: string,
  answered: string,
  role: LabelledRow['role'],
  from: number,
  n: number,
  quality: Record<string, number>,
  delay = 1_000,
): LabelledRow[] {
  const r = new SeededRandom(from % 1_000_003);
  return Array.from({ length: n }, (_, i) => {
    const label = r.uniform() < 0.4 ? 1 : 0;
    const scores: Record<string, number> = {};
    for (const [v, q] of Object.entries(quality)) {
      scores[v] = Math.min(1, Math.max(0, 0.5 + (label === 1 ? 0.45 : -0.45) * q + (r.uniform() - 0.5) * 0.3));
    }
    return {
      id: `${prefix}${String(i).padStart(4, '0')}`,
      answered,
      role,
      predictionTime: from + i * 1_000,
      labelTime: from + i * 1_000 + delay,
      label,
      scores,
    };
  });
}

/** A transition of model `fraud` recorded by the trainer's offline gate at `at`: the tests' row. */
export function transitionRow(
  version: string,
  from: TransitionRow['from_stage'],
  to: TransitionRow['to_stage'],
  at: number,
  previous: string | null = null,
): TransitionRow {
  return {
    model: 'fraud',
    version,
    from_stage: from,
    to_stage: to,
    at,
    decided_by: 'trainer:offline_gate',
    reason: 'offline_gate',
    detail: '',
    evidence: '',
    canary_share: null,
    previous_version: previous,
    recorded_at: at,
  };
}

/** `fraud`'s transitions: v1 in production since `t0` + 2, each of `shadows` in shadow against it since `t0` + 10. */
export function productionWithShadows(t0: number, shadows: readonly string[]): MemoryTransitions {
  const s = new MemoryTransitions([]);
  for (const r of [
    transitionRow('v1', null, 'candidate', t0),
    transitionRow('v1', 'candidate', 'shadow', t0),
    transitionRow('v1', 'shadow', 'canary', t0 + 1),
    transitionRow('v1', 'canary', 'production', t0 + 2),
    ...shadows.flatMap((v) => [
      transitionRow(v, null, 'candidate', t0 + 10),
      transitionRow(v, 'candidate', 'shadow', t0 + 10, 'v1'),
    ]),
  ])
    s.rows.set(`fraud/${r.version}/${r.to_stage}`, r);
  return s;
}
