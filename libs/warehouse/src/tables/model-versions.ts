import type { Baseline } from '@driftline/policy';
import type { ClickHouse } from '../client.js';
import type { Migration } from '../migrate.js';

/**
 * `model_versions`: one row per (model, version); the version is derived from the retrain request,
 * so a redelivered request rewrites the same key. `published` turns 1 once the model events are on
 * models.v1 (newest `updated_at` wins): a request whose row is published is done.
 */
export const modelVersionsMigration: Migration = {
  id: '0350_model_versions',
  statements: [
    `CREATE TABLE IF NOT EXISTS {db}.model_versions (
      model LowCardinality(String),
      version String,
      request_id String,
      base_version String COMMENT 'the version serving when the request was made',
      status LowCardinality(String) COMMENT 'PROMOTED or REJECTED',
      promotion_reason String,
      data_from DateTime64(3, 'UTC'),
      data_to DateTime64(3, 'UTC'),
      rows_train UInt64,
      rows_holdout UInt64,
      metrics Map(String, Float64) COMMENT 'held-out metrics of the candidate; current_* of the serving model on the same slice',
      params String,
      artifact_uri String,
      reference_id Nullable(String),
      reference_uri Nullable(String),
      device LowCardinality(String),
      device_reason String,
      published UInt8,
      registered_at DateTime64(3, 'UTC'),
      updated_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(updated_at)
    ORDER BY (model, version)`,
  ],
};

/** A row of `model_versions` (times as chTime text). */
export interface ModelVersionRow {
  readonly model: string;
  readonly version: string;
  readonly request_id: string;
  readonly base_version: string;
  readonly status: 'PROMOTED' | 'REJECTED';
  readonly promotion_reason: string;
  readonly data_from: string;
  readonly data_to: string;
  readonly rows_train: number;
  readonly rows_holdout: number;
  readonly metrics: Readonly<Record<string, number>>;
  readonly params: string;
  readonly artifact_uri: string;
  readonly reference_id: string | null;
  readonly reference_uri: string | null;
  readonly device: string;
  readonly device_reason: string;
  readonly published: 0 | 1;
  readonly registered_at: string;
  readonly updated_at: string;
}

/** The trainer's registry of trained versions. */
export interface ModelRegistry {
  byRequest(requestId: string): Promise<ModelVersionRow | undefined>;
  save(row: ModelVersionRow): Promise<void>;
}

export class ClickHouseModelRegistry implements ModelRegistry {
  constructor(private readonly ch: ClickHouse) {}

  async byRequest(requestId: string): Promise<ModelVersionRow | undefined> {
    const [row] = await this.ch.select<ModelVersionRow>(
      `SELECT * FROM ${this.ch.table('model_versions')} FINAL WHERE request_id = {id:String}
       ORDER BY published DESC, updated_at DESC LIMIT 1`,
      { id: requestId },
    );
    return row === undefined ? undefined : { ...row, published: Number(row.published) === 1 ? 1 : 0 };
  }

  save(row: ModelVersionRow): Promise<void> {
    return this.ch.insert('model_versions', [row]);
  }

  /** Held-out metrics a registered version reached at its evaluation (the retrain-trigger's baseline). */
  async metrics(model: string, version: string): Promise<Baseline | undefined> {
    const [row] = await this.ch.select<{ metrics: Record<string, number> }>(
      `SELECT metrics FROM ${this.ch.table('model_versions')} FINAL
       WHERE model = {model:String} AND version = {version:String} LIMIT 1`,
      { model, version },
    );
    return row?.metrics;
  }
}
