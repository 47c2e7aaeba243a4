import type { EventArtifacts, Stage, TransitionFields } from '@driftline/policy';
import type { ClickHouse } from '../client.js';
import type { Migration } from '../migrate.js';
import { chTime } from '../time.js';

/**
 * `model_transitions`: every stage transition of a model version (candidate → shadow → canary →
 * production → retired, or → rejected / rolled_back), who decided it and on what evidence. The
 * stage graph has no cycle, so a version reaches a stage at most once: (model, version, to_stage)
 * is the key, and writing the same transition again (a retry, a replayed tick) replaces it.
 *
 * No TTL, on purpose (like `model_versions`): it grows with transitions, not with events (a handful
 * per trained version), and it IS the model-controller's state — a version still serving must keep
 * the record of how it got there, or the controller would forget which version is production.
 */
export const modelTransitionsMigration: Migration = {
  id: '0510_model_transitions',
  statements: [
    `CREATE TABLE IF NOT EXISTS {db}.model_transitions (
      model LowCardinality(String),
      version String,
      from_stage LowCardinality(String) COMMENT 'empty for the first record of a version',
      to_stage LowCardinality(String),
      at DateTime64(3, 'UTC') COMMENT 'event time of the decision (label time of the deciding pair)',
      decided_by String COMMENT 'kind:name, e.g. policy:promotion, trainer:offline_gate, operator:alice',
      reason String,
      detail String,
      evidence String COMMENT 'JSON object, or empty',
      canary_share Nullable(Float64),
      previous_version Nullable(String) COMMENT 'production: the version replaced; rolled_back: the version serving instead; shadow: the version it was gated against',
      recorded_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(recorded_at)
    ORDER BY (model, version, to_stage)`,
  ],
};

/** A row of `model_transitions`; times in epoch milliseconds. */
export interface TransitionRow extends TransitionFields {
  readonly model: string;
  /** When the row was written (wall clock): the newest wins for a (model, version, to_stage). */
  readonly recorded_at: number;
}

/** What a model event needs of a trained version (from `model_versions`). */
export type VersionArtifacts = EventArtifacts;

/** Most rows `history` returns for one model: transitions grow by a handful per trained version. */
export const MAX_HISTORY_ROWS = 10_000;

export interface ModelTransitionStore {
  /** Writes transitions (idempotent per (model, version, to_stage): the newest recorded_at wins). */
  record(rows: readonly TransitionRow[]): Promise<void>;
  /** The model's transitions (of one version when given), deduplicated, ordered by `at` (at most MAX_HISTORY_ROWS, the newest). */
  history(model: string, version?: string): Promise<TransitionRow[]>;
  /** Every model with a transition, by name (read in pages of MAX_HISTORY_ROWS). */
  models(): Promise<string[]>;
  /** The registered artifacts of a trained version (`model_versions`), or undefined when unknown. */
  artifacts(model: string, version: string): Promise<VersionArtifacts | undefined>;
}

interface RawTransition {
  model: string;
  version: string;
  from_stage: string;
  to_stage: string;
  at: number | string;
  decided_by: string;
  reason: string;
  detail: string;
  evidence: string;
  canary_share: number | null;
  previous_version: string | null;
  recorded_at: number | string;
}

export class ClickHouseModelTransitionStore implements ModelTransitionStore {
  constructor(private readonly ch: ClickHouse) {}

  record(rows: readonly TransitionRow[]): Promise<void> {
    return this.ch.insert(
      'model_transitions',
      rows.map((r) => ({
        ...r,
        from_stage: r.from_stage ?? '',
        at: chTime(r.at),
        recorded_at: chTime(r.recorded_at),
      })),
    );
  }

  async history(model: string, version?: string): Promise<TransitionRow[]> {
    const rows = await this.ch.select<RawTransition>(
      `SELECT * FROM (
         SELECT model, version, from_stage, to_stage, toUnixTimestamp64Milli(at) AS at, decided_by, reason, detail,
                evidence, canary_share, previous_version, toUnixTimestamp64Milli(recorded_at) AS recorded_at
         FROM ${this.ch.table('model_transitions')} FINAL
         WHERE model = {model:String} ${version === undefined ? '' : 'AND version = {version:String}'}
         ORDER BY at DESC, version DESC, to_stage DESC
         LIMIT {limit:UInt32}
       ) ORDER BY at, version, to_stage`,
      { model, limit: MAX_HISTORY_ROWS, ...(version === undefined ? {} : { version }) },
    );
    return rows.map((r) => ({
      model: r.model,
      version: r.version,
      from_stage: r.from_stage === '' ? null : (r.from_stage as Stage),
      to_stage: r.to_stage as Stage,
      at: Number(r.at),
      decided_by: r.decided_by,
      reason: r.reason,
      detail: r.detail,
      evidence: r.evidence,
      canary_share: r.canary_share === null ? null : Number(r.canary_share),
      previous_version: r.previous_version,
      recorded_at: Number(r.recorded_at),
    }));
  }

  async models(): Promise<string[]> {
    // Keyset pages of MAX_HISTORY_ROWS names: every model, each page one bounded query (a single
    // LIMIT left every model past the 10,000th by name out of every tick, silently).
    const out: string[] = [];
    for (let after: string | undefined; ; ) {
      const rows = await this.ch.select<{ model: string }>(
        `SELECT DISTINCT model FROM ${this.ch.table('model_transitions')}
         ${after === undefined ? '' : 'WHERE model > {after:String}'} ORDER BY model LIMIT {limit:UInt32}`,
        { limit: MAX_HISTORY_ROWS, ...(after === undefined ? {} : { after }) },
      );
      for (const r of rows) out.push(r.model);
      const last = rows.at(-1);
      if (rows.length < MAX_HISTORY_ROWS || last === undefined) return out;
      after = last.model;
    }
  }

  async artifacts(model: string, version: string): Promise<VersionArtifacts | undefined> {
    const [row] = await this.ch.select<VersionArtifacts>(
      `SELECT request_id, artifact_uri, reference_uri, metrics FROM ${this.ch.table('model_versions')} FINAL
       WHERE model = {model:String} AND version = {version:String} LIMIT 1`,
      { model, version },
    );
    return row === undefined ? undefined : { ...row, request_id: row.request_id === '' ? null : row.request_id };
  }
}
