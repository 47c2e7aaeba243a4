import { embeddedQueryAbandoned } from '@driftline/warehouse';

/**
 * Opens the warehouse (`open`: openWarehouse, or createClickHouse for `clickhouse migrate`), runs
 * `use` on it and closes it. Every command that opens the warehouse goes through here (not main.ts:
 * it would load the warehouse for `--help` too).
 *
 * A query of the embedded engine that timed out (DRIFTLINE_CLICKHOUSE_TIMEOUT), while opening (a
 * migration) or after, runs on (chdb cannot interrupt it) and holds `process.exit` until it ends:
 * the command printed its timeout and ran on for minutes (`report` on a large warehouse; then
 * `model-card`, `reference`, `model stage` and `clickhouse migrate`, found by a review). Then, once
 * main.ts has flushed stdout and stderr, the process ends at once (SIGKILL: its status is 137, not
 * the error's code). Tests: test/embedded-timeout-exit.int.test.ts; test/with-warehouse-everywhere.test.ts
 * fails when a command opens the warehouse another way.
 */
export async function withWarehouse<W extends { close(): Promise<void> }, T>(
  open: () => Promise<W>,
  use: (warehouse: W) => Promise<T>,
): Promise<T> {
  try {
    const warehouse = await open();
    try {
      return await use(warehouse);
    } finally {
      await warehouse.close();
    }
  } finally {
    if (embeddedQueryAbandoned()) process.once('exit', () => process.kill(process.pid, 'SIGKILL'));
  }
}
