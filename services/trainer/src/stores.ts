import { type ClickHouse, chTime } from '@driftline/clickhouse';
import { SinkUnavailableError, toDriftlineError } from '@driftline/core';
import { type LabeledRow, parseFeatures } from './dataset.js';

const unavailable = (what: string, error: unknown) =>
  new SinkUnavailableError(`${what}: ${toDriftlineError(error).message}`, { cause: error });

export { chTime };

/** Where training data comes from: one port, one ClickHouse adapter (label-joiner's labeled_predictions). */
export interface TrainingSource {
  read(model: string, from: number, to: number): Promise<LabeledRow[]>;
}

export class LabeledPredictionsSource implements TrainingSource {
  constructor(private readonly ch: ClickHouse) {}

  /** Joined rows of the model with from ≤ prediction_time < to; features are as stored at prediction time. */
  async read(model: string, from: number, to: number): Promise<LabeledRow[]> {
    let rows: Array<{ prediction_id: string; t: string | number; features: string; prediction: number; label: number }>;
    try {
      const result = await this.ch.client.query({
        query: `SELECT prediction_id, toUnixTimestamp64Milli(prediction_time) AS t, features, prediction, label
                FROM ${this.ch.table('labeled_predictions')} FINAL
                WHERE model = {model:String}
                  AND prediction_time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
                  AND prediction_time < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
                ORDER BY prediction_time, prediction_id`,
        query_params: { model, from, to },
        format: 'JSONEachRow',
      });
      rows = await result.json();
    } catch (error) {
      throw unavailable('labeled_predictions', error);
    }
    return rows.map((r) => ({
      predictionId: r.prediction_id,
      time: Number(r.t),
      features: parseFeatures(r.features, r.prediction_id),
      prediction: r.prediction,
      label: r.label,
    }));
  }
}

/** A row of `model_versions`. */
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

export interface ModelRegistry {
  byRequest(requestId: string): Promise<ModelVersionRow | undefined>;
  save(row: ModelVersionRow): Promise<void>;
}

export class ClickHouseModelRegistry implements ModelRegistry {
  constructor(private readonly ch: ClickHouse) {}

  async byRequest(requestId: string): Promise<ModelVersionRow | undefined> {
    try {
      const result = await this.ch.client.query({
        query: `SELECT * FROM ${this.ch.table('model_versions')} FINAL WHERE request_id = {id:String}
                ORDER BY published DESC, updated_at DESC LIMIT 1`,
        query_params: { id: requestId },
        format: 'JSONEachRow',
      });
      const rows = await result.json<ModelVersionRow>();
      const row = rows[0];
      return row === undefined ? undefined : { ...row, published: Number(row.published) === 1 ? 1 : 0 };
    } catch (error) {
      throw unavailable('model_versions', error);
    }
  }

  async save(row: ModelVersionRow): Promise<void> {
    try {
      await this.ch.client.insert({ table: this.ch.table('model_versions'), values: [row], format: 'JSONEachRow' });
    } catch (error) {
      throw unavailable('model_versions', error);
    }
  }
}
