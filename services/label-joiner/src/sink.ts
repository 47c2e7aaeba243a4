import { type ClickHouse, chTime } from '@driftline/clickhouse';
import { SinkUnavailableError } from '@driftline/core';
import { MISSING_SEGMENT, type PerformanceRow, type Task, type WindowRef } from '@driftline/performance';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';

export { chTime };

export interface JoinedRow {
  readonly prediction: PredictionEvent;
  readonly label: LabelEvent;
  readonly joinedAt: number;
}

export interface ExpiredPredictionRow {
  readonly prediction: PredictionEvent;
  readonly deadline: number;
  readonly expiredAt: number;
}

export interface WindowData {
  readonly labeled: Array<{ prediction: number; label: number; segments: string[] }>;
  readonly expired: Array<{ segments: string[] }>;
}

/** A raw JSON value from JSONExtractRaw as a segment name. */
export function segmentValue(raw: string): string {
  if (raw === '' || raw === 'null') return MISSING_SEGMENT;
  if (raw.startsWith('"')) {
    try {
      return String(JSON.parse(raw));
    } catch {
      return raw;
    }
  }
  return raw;
}

async function guarded<T>(action: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw new SinkUnavailableError(`clickhouse ${action} failed: ${(error as Error)?.message ?? String(error)}`, {
      cause: error,
    });
  }
}

/** The analytical sink of the label-joiner: idempotent inserts (ReplacingMergeTree) and window reads. */
export class JoinerSink {
  constructor(private readonly ch: ClickHouse) {}

  async insertJoined(rows: readonly JoinedRow[]): Promise<void> {
    if (rows.length === 0) return;
    await guarded('insert labeled_predictions', () =>
      this.ch.client.insert({
        table: this.ch.table('labeled_predictions'),
        format: 'JSONEachRow',
        values: rows.map((r) => ({
          model: r.prediction.model,
          model_version: r.prediction.model_version,
          prediction_id: r.prediction.prediction_id,
          entity_id: r.prediction.entity_id,
          prediction_time: chTime(r.prediction.event_time),
          label_time: chTime(r.label.event_time),
          features: JSON.stringify(r.prediction.features),
          prediction: r.prediction.prediction,
          predicted_class: r.prediction.predicted_class,
          label: r.label.label,
          joined_at: chTime(r.joinedAt),
        })),
      }),
    );
  }

  async insertExpired(rows: readonly ExpiredPredictionRow[]): Promise<void> {
    if (rows.length === 0) return;
    await guarded('insert unlabeled_predictions', () =>
      this.ch.client.insert({
        table: this.ch.table('unlabeled_predictions'),
        format: 'JSONEachRow',
        values: rows.map((r) => ({
          model: r.prediction.model,
          model_version: r.prediction.model_version,
          prediction_id: r.prediction.prediction_id,
          entity_id: r.prediction.entity_id,
          prediction_time: chTime(r.prediction.event_time),
          deadline: chTime(r.deadline),
          expired_at: chTime(r.expiredAt),
          features: JSON.stringify(r.prediction.features),
          prediction: r.prediction.prediction,
          predicted_class: r.prediction.predicted_class,
        })),
      }),
    );
  }

  /**
   * Everything a window's metrics need, read from the deduplicated tables (FINAL): the labeled
   * rows, and the expired ones that never got a label (a prediction replayed after its tombstone
   * vanished could be in both; the labeled row wins).
   */
  async readWindow(ref: WindowRef, windowMs: number, segmentFeatures: readonly string[]): Promise<WindowData> {
    const params: Record<string, unknown> = {
      model: ref.model,
      version: ref.modelVersion,
      start: ref.windowStart,
      end: ref.windowStart + windowMs,
    };
    const segs = segmentFeatures.map((f, i) => {
      params[`f${i}`] = f;
      return `JSONExtractRaw(features, {f${i}:String})`;
    });
    const segArray = segs.length === 0 ? "CAST([], 'Array(String)')" : `[${segs.join(', ')}]`;
    const where = `model = {model:String} AND model_version = {version:String}
      AND prediction_time >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')
      AND prediction_time < fromUnixTimestamp64Milli({end:Int64}, 'UTC')`;
    const labeledTable = this.ch.table('labeled_predictions');
    return guarded('read window', async () => {
      const labeled = await this.ch.client.query({
        query: `SELECT prediction, label, ${segArray} AS segments FROM ${labeledTable} FINAL WHERE ${where}`,
        query_params: params,
        format: 'JSONCompactEachRow',
      });
      const expired = await this.ch.client.query({
        query: `SELECT ${segArray} AS segments FROM ${this.ch.table('unlabeled_predictions')} FINAL
          WHERE ${where} AND prediction_id NOT IN (SELECT prediction_id FROM ${labeledTable} WHERE ${where})`,
        query_params: params,
        format: 'JSONCompactEachRow',
      });
      const labeledRows = await labeled.json<[number, number, string[]]>();
      const expiredRows = await expired.json<[string[]]>();
      return {
        labeled: labeledRows.map(([prediction, label, segments]) => ({
          prediction: Number(prediction),
          label: Number(label),
          segments: segments.map(segmentValue),
        })),
        expired: expiredRows.map(([segments]) => ({ segments: segments.map(segmentValue) })),
      };
    });
  }

  async insertPerformance(
    ref: WindowRef,
    windowMs: number,
    task: Task,
    threshold: number,
    rows: readonly PerformanceRow[],
    version: number,
    computedAt: number,
  ): Promise<void> {
    if (rows.length === 0) return;
    await guarded('insert performance_windows', () =>
      this.ch.client.insert({
        table: this.ch.table('performance_windows'),
        format: 'JSONEachRow',
        values: rows.map((r) => ({
          model: ref.model,
          model_version: ref.modelVersion,
          window_start: chTime(ref.windowStart),
          window_end: chTime(ref.windowStart + windowMs),
          segment_feature: r.segmentFeature,
          segment: r.segment,
          task,
          predictions: r.predictions,
          labeled: r.labeled,
          expired: r.expired,
          pending: r.pending,
          label_coverage: r.labelCoverage,
          invalid_labels: r.invalidLabels,
          ...r.metrics,
          threshold,
          version,
          computed_at: chTime(computedAt),
        })),
      }),
    );
  }
}
