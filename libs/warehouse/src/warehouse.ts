import type { ReportData } from '@driftline/report';
import { type ClickHouse, createClickHouse } from './client.js';
import type { ClickHouseConfig } from './config.js';
import { migrate } from './migrate.js';
import { migrations } from './migrations.js';
import { PipelineSummary } from './read-models/pipeline-summary.js';
import { loadReportData, type ReportRange } from './read-models/report.js';
import { type AlertDeliveryStore, ClickHouseAlertDeliveryStore } from './tables/alert-deliveries.js';
import { ClickHouseProgressStore, type ProgressStore } from './tables/drift-progress.js';
import { ClickHouseDriftQuarantineStore, type DriftQuarantineStore } from './tables/drift-quarantine.js';
import { ClickHouseDriftWindowStore, type DriftWindowStore } from './tables/drift-windows.js';
import { ClickHouseModelRegistry, type ModelRegistry } from './tables/model-versions.js';
import { ClickHousePerformanceStore, type PerformanceStore } from './tables/performance-windows.js';
import { ClickHousePredictionStore, type PredictionStore } from './tables/predictions.js';
import { ClickHouseReferenceStore, type ReferenceStore } from './tables/reference-profiles.js';
import { ClickHouseDecisionStore, type DecisionStore } from './tables/retrain-decisions.js';

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
  readonly decisions: DecisionStore;
  readonly models: ModelRegistry;
  /** Every alert-router delivery; also its deduplication state. */
  readonly alertDeliveries: AlertDeliveryStore;
  readonly summary: PipelineSummary;
  report(range: ReportRange, now?: number): Promise<ReportData>;
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
    decisions: new ClickHouseDecisionStore(ch),
    models: new ClickHouseModelRegistry(ch),
    alertDeliveries: new ClickHouseAlertDeliveryStore(ch),
    summary: new PipelineSummary(ch),
    report: (range, now) => loadReportData(ch, range, now),
    close: () => ch.close(),
  };
}

/** Connects, applies every pending migration (the one ordered list), and returns the stores. */
export async function openWarehouse(config: ClickHouseConfig): Promise<Warehouse> {
  const ch = await createClickHouse(config);
  await migrate(ch, migrations);
  return warehouseOn(ch);
}
