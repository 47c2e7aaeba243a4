import { resolve } from 'node:path';
import { ConfigError, redactCredentials } from '@driftline/core';
import type { ModelCardData, ReportData } from '@driftline/report';
import { type ClickHouse, createClickHouse } from './client.js';
import type { ClickHouseConfig } from './config.js';
import { migrate } from './migrate.js';
import { migrations } from './migrations.js';
import { loadModelCard } from './read-models/model-card.js';
import { PipelineSummary } from './read-models/pipeline-summary.js';
import { loadReportData, type ReportRange } from './read-models/report.js';
import { type AlertDeliveryStore, ClickHouseAlertDeliveryStore } from './tables/alert-deliveries.js';
import { ClickHouseDataQualityStore, type DataQualityStore } from './tables/data-quality-windows.js';
import { ClickHouseProgressStore, type ProgressStore } from './tables/drift-progress.js';
import { ClickHouseDriftQuarantineStore, type DriftQuarantineStore } from './tables/drift-quarantine.js';
import { ClickHouseDriftWindowStore, type DriftWindowStore } from './tables/drift-windows.js';
import { ClickHouseModelTransitionStore, type ModelTransitionStore } from './tables/model-transitions.js';
import { ClickHouseModelRegistry, type ModelRegistry } from './tables/model-versions.js';
import { ClickHousePerformanceEstimateStore, type PerformanceEstimateStore } from './tables/performance-estimates.js';
import { ClickHousePerformanceStore, type PerformanceStore } from './tables/performance-windows.js';
import { ClickHousePredictionStore, type PredictionStore } from './tables/predictions.js';
import { ClickHouseReferenceStore, type ReferenceStore } from './tables/reference-profiles.js';
import { ClickHouseDecisionStore, type DecisionStore } from './tables/retrain-decisions.js';
import { ClickHouseSequentialDetectionStore, type SequentialDetectionStore } from './tables/sequential-detections.js';
import { ClickHouseSkewWindowStore, type SkewWindowStore } from './tables/skew-windows.js';

/** Every store and read model over one ClickHouse: what services get, instead of a client. */
export interface Warehouse {
  readonly database: string;
  readonly driftWindows: DriftWindowStore;
  /** Windows whose drift could not be computed or stored (merge stage), set aside. */
  readonly driftQuarantine: DriftQuarantineStore;
  readonly progress: ProgressStore;
  readonly references: ReferenceStore;
  readonly predictions: PredictionStore;
  readonly performance: PerformanceStore;
  /** CBPE state (score histograms), calibration maps and labeled business values (0610). */
  readonly estimates: PerformanceEstimateStore;
  readonly decisions: DecisionStore;
  readonly models: ModelRegistry;
  /** Stage transitions of model versions (the model-controller's state). */
  readonly transitions: ModelTransitionStore;
  /** Every alert-router delivery; also its deduplication state. */
  readonly alertDeliveries: AlertDeliveryStore;
  /** Training-serving skew counts per window and source partition (the skew-monitor). */
  readonly skewWindows: SkewWindowStore;
  /** Data-quality expectations per window (drift-monitor) and view freshness (feature-materializer). */
  readonly dataQuality: DataQualityStore;
  /** Alarms of the drift-monitor's online sequential detector (0640). */
  readonly sequentialDetections: SequentialDetectionStore;
  readonly summary: PipelineSummary;
  report(range: ReportRange, now?: number): Promise<ReportData>;
  /** Everything the model card of one version shows (NOT_FOUND when nothing is recorded for it). */
  modelCard(model: string, version: string, now?: number): Promise<ModelCardData>;
  close(): Promise<void>;
}

/** The stores over an open (and migrated) ClickHouse; `close()` closes it. */
export function warehouseOn(ch: ClickHouse): Warehouse {
  return {
    database: ch.database,
    driftWindows: new ClickHouseDriftWindowStore(ch),
    driftQuarantine: new ClickHouseDriftQuarantineStore(ch),
    progress: new ClickHouseProgressStore(ch),
    references: new ClickHouseReferenceStore(ch),
    predictions: new ClickHousePredictionStore(ch),
    performance: new ClickHousePerformanceStore(ch),
    estimates: new ClickHousePerformanceEstimateStore(ch),
    decisions: new ClickHouseDecisionStore(ch),
    models: new ClickHouseModelRegistry(ch),
    transitions: new ClickHouseModelTransitionStore(ch),
    alertDeliveries: new ClickHouseAlertDeliveryStore(ch),
    skewWindows: new ClickHouseSkewWindowStore(ch),
    dataQuality: new ClickHouseDataQualityStore(ch),
    sequentialDetections: new ClickHouseSequentialDetectionStore(ch),
    summary: new PipelineSummary(ch),
    report: (range, now) => loadReportData(ch, range, now),
    modelCard: (model, version, now) => loadModelCard(ch, model, version, now),
    close: () => ch.close(),
  };
}

export interface OpenOptions {
  /**
   * Apply pending migrations (default true). False for readers (`driftline report`, `model-card`):
   * no DDL is sent — a read-only user can read, and a mistyped database is an error instead of a
   * new, empty one — and a missing table or column is the read model's note, as for an older database.
   * The embedded engine's directory must hold a warehouse already: nothing is created there.
   */
  readonly migrate?: boolean;
}

/**
 * Connects, checks that a server URL answers as ClickHouse (a ConfigError naming
 * DRIFTLINE_CLICKHOUSE_URL otherwise: another service, or one answering 200 to anything, had
 * "applied" migrations and "stored" every insert), applies every pending migration (the one ordered
 * list), and returns the stores. With `migrate: false` it only checks that the database exists: a
 * ConfigError naming DRIFTLINE_CLICKHOUSE_DATABASE otherwise (DRIFTLINE_CLICKHOUSE_PATH when the
 * embedded engine's directory holds no warehouse: a read-only command created the whole tree there).
 */
export async function openWarehouse(config: ClickHouseConfig, options: OpenOptions = {}): Promise<Warehouse> {
  const migrating = options.migrate ?? true;
  const ch = await createClickHouse(config, { createDirectory: migrating });
  try {
    await ch.verify();
    if (migrating) await migrate(ch, migrations);
    else await requireDatabase(ch, config);
  } catch (error) {
    await ch.close().catch(() => {});
    throw error;
  }
  return warehouseOn(ch);
}

async function requireDatabase(ch: ClickHouse, config: ClickHouseConfig): Promise<void> {
  const [row] = await ch.select<{ n: number | string }>(
    'SELECT count() AS n FROM system.databases WHERE name = {db:String}',
    { db: ch.database },
  );
  if (Number(row?.n ?? 0) > 0) return;
  const where =
    config.mode === 'embedded'
      ? `the embedded engine at ${resolve(config.path)}`
      : `the ClickHouse server ${redactCredentials(config.url)}`;
  throw new ConfigError(
    'DRIFTLINE_CLICKHOUSE_DATABASE',
    `database ${JSON.stringify(ch.database)} does not exist on ${where} (a typo, or nothing has written there yet)`,
  );
}
