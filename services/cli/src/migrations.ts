import type { Migration } from '@driftline/clickhouse';

/** ClickHouse DDL of every service, applied once per database by the runner. */
export const allMigrations: readonly Migration[] = [];
