import type { Baseline, ModelState } from '@driftline/policy';
import type { ClickHouse } from '../client.js';
import { arrayElementUrlBytes, chunksByUrlBytes } from '../lookup-chunks.js';
import type { Migration } from '../migrate.js';
import { ClickHouseModelRegistry } from './model-versions.js';

/**
 * `retrain_decisions`: one row per (model, alert_id) — every alert's decision, fired or held and
 * why, ordered per model by `seq`. The model's policy state after a batch (`state`) is on its last
 * first-sighting row of that batch only (`''` on the others; rows of releases before carry it on
 * every row), so a restarted or new owner rebuilds its state with one query. A replayed alert
 * writes the same key: a first sighting (`first = 1`) outranks a later duplicate sighting
 * (`first = 0`) in the ReplacingMergeTree.
 */
export const retrainDecisionsMigration: Migration = {
  id: '0300_retrain_decisions',
  statements: [
    `CREATE TABLE IF NOT EXISTS {db}.retrain_decisions (
      model LowCardinality(String),
      alert_id String,
      alert_kind LowCardinality(String),
      model_version LowCardinality(String),
      window_start DateTime64(3, 'UTC'),
      window_end DateTime64(3, 'UTC'),
      alert_time DateTime64(3, 'UTC'),
      decision LowCardinality(String) COMMENT 'fire or hold',
      fired UInt8 COMMENT '1 when a retrain request was emitted',
      reason LowCardinality(String) COMMENT 'fire, or why it held: duplicate, no_signal, sustaining, cooldown, ...',
      detail String,
      signals Array(String),
      streak UInt32,
      request_id Nullable(String),
      data_from Nullable(DateTime64(3, 'UTC')),
      data_to Nullable(DateTime64(3, 'UTC')),
      seq UInt64,
      first UInt8,
      state String COMMENT 'JSON: the model policy state after this decision',
      decided_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(first)
    ORDER BY (model, alert_id)`,
  ],
};

/** A row of `retrain_decisions` (times as chTime text). */
export interface DecisionRow {
  readonly model: string;
  readonly alert_id: string;
  readonly alert_kind: string;
  readonly model_version: string;
  readonly window_start: string;
  readonly window_end: string;
  readonly alert_time: string;
  readonly decision: 'fire' | 'hold';
  readonly fired: 0 | 1;
  readonly reason: string;
  readonly detail: string;
  readonly signals: readonly string[];
  readonly streak: number;
  readonly request_id: string | null;
  readonly data_from: string | null;
  readonly data_to: string | null;
  readonly seq: number;
  readonly first: 0 | 1;
  /** The model's state after this decision (JSON) on its last first-sighting row of the batch, else `''`. */
  readonly state: string;
  readonly decided_at: string;
}

/** What the retrain-trigger needs from storage. */
export interface DecisionStore {
  /**
   * The latest persisted policy state of each model (absent models have none yet): of its
   * first-sighting rows that carry one, the greatest `seq`'s.
   */
  loadStates(models: readonly string[]): Promise<Map<string, ModelState>>;
  /** Metrics the serving version reached at its evaluation (model_versions), if it was registered here. */
  baseline(model: string, version: string): Promise<Baseline | undefined>;
  /**
   * Of the alert ids of each model, those with a decision row (any: first or duplicate), within
   * the table's 400-day TTL. How the trigger knows an alert was decided whatever its offset.
   * With `includedThrough` (a model's state `seq`), an id whose first decision has a greater `seq`
   * is left out: a decision the state does not include, its row landed from an insert whose
   * state-carrying row did not (decided again, the same way, by the replay).
   */
  recordedAlerts(
    alertIds: ReadonlyMap<string, readonly string[]>,
    includedThrough?: ReadonlyMap<string, number>,
  ): Promise<Map<string, Set<string>>>;
  write(rows: readonly DecisionRow[]): Promise<void>;
}

// An unknown version is looked up again after this long (it may be registered meanwhile).
const UNKNOWN_BASELINE_TTL_MS = 60_000;
const MAX_CACHED_BASELINES = 10_000;

export class ClickHouseDecisionStore implements DecisionStore {
  private readonly baselines = new Map<string, { value: Baseline | undefined; at: number }>();
  private readonly versions: ClickHouseModelRegistry;

  constructor(
    private readonly ch: ClickHouse,
    private readonly now: () => number = Date.now,
  ) {
    this.versions = new ClickHouseModelRegistry(ch);
  }

  async loadStates(models: readonly string[]): Promise<Map<string, ModelState>> {
    const states = new Map<string, ModelState>();
    // The names travel in the URL: chunks by their encoded bytes (a model is in one chunk only).
    for (const chunk of chunksByUrlBytes(new Set(models), arrayElementUrlBytes)) {
      const rows = await this.ch.select<{ model: string; newest: string }>(
        // Most rows carry no state (only a batch's last row of each model does); rows of releases
        // before carry it on every row, so both load. Not aliased `state`: the alias would
        // replace the column in WHERE.
        `SELECT model, argMax(state, seq) AS newest FROM ${this.ch.table('retrain_decisions')}
         WHERE model IN {models:Array(String)} AND first = 1 AND state != '' GROUP BY model`,
        { models: chunk },
      );
      for (const r of rows) states.set(r.model, JSON.parse(r.newest) as ModelState);
    }
    return states;
  }

  async baseline(model: string, version: string): Promise<Baseline | undefined> {
    const key = `${model}\u0000${version}`;
    const cached = this.baselines.get(key);
    // A registered version's metrics never change; an unknown one is looked up again later.
    if (cached !== undefined && (cached.value !== undefined || this.now() - cached.at < UNKNOWN_BASELINE_TTL_MS)) {
      return cached.value;
    }
    const value = await this.versions.metrics(model, version);
    if (this.baselines.size >= MAX_CACHED_BASELINES) this.baselines.clear();
    this.baselines.set(key, { value, at: this.now() });
    return value;
  }

  async recordedAlerts(
    alertIds: ReadonlyMap<string, readonly string[]>,
    includedThrough?: ReadonlyMap<string, number>,
  ): Promise<Map<string, Set<string>>> {
    const pairs = [...alertIds].flatMap(([model, ids]) => [...new Set(ids)].map((id) => [model, id] as const));
    const asked = new Set(pairs.map(([model, id]) => `${model}\u0000${id}`));
    const out = new Map<string, Set<string>>();
    // The pairs travel in the URL: chunks by their encoded bytes (each pair counted whole).
    const pairBytes = ([model, id]: readonly [string, string]) =>
      arrayElementUrlBytes(model) + arrayElementUrlBytes(id);
    for (const chunk of chunksByUrlBytes(pairs, pairBytes)) {
      // Both columns of the sorting key: a range of the index per model, not a scan; the
      // cross-product the two INs allow is narrowed to the asked pairs below.
      // minIf over no first-sighting row is 0: a duplicate row alone counts as included.
      const rows = await this.ch.select<{ model: string; alert_id: string; seq: number | string }>(
        `SELECT model, alert_id, minIf(seq, first = 1) AS seq FROM ${this.ch.table('retrain_decisions')}
         WHERE model IN {models:Array(String)} AND alert_id IN {ids:Array(String)} GROUP BY model, alert_id`,
        { models: [...new Set(chunk.map(([m]) => m))], ids: [...new Set(chunk.map(([, id]) => id))] },
      );
      for (const r of rows) {
        if (!asked.has(`${r.model}\u0000${r.alert_id}`)) continue;
        if (Number(r.seq) > (includedThrough?.get(r.model) ?? Number.POSITIVE_INFINITY)) continue;
        const ids = out.get(r.model) ?? new Set<string>();
        ids.add(r.alert_id);
        out.set(r.model, ids);
      }
    }
    return out;
  }

  write(rows: readonly DecisionRow[]): Promise<void> {
    return this.ch.insert('retrain_decisions', rows);
  }
}
