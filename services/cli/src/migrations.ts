import type { Migration } from '@driftline/clickhouse';
import { labelJoinerMigrations } from '@driftline/label-joiner';

/** ClickHouse DDL of every service, applied once per database by the runner. */
export const allMigrations: readonly Migration[] = [
  ...labelJoinerMigrations, // 0200_labeled_predictions
];
