// What the label-joiner's check against ClickHouse costs per batch of 500 (sinkLookup and
// mergeSinkLookups of @driftline/join, writtenPredictionRows of @driftline/warehouse) on the
// embedded engine: a model
// with <rows> labeled predictions over 30 days (a tenth as many expired), median of 15 batches.
// The embedded engine binds one data directory per process: run it in a process of its own.
//   pnpm exec tsx --conditions=source services/label-joiner/bench/sink-lookup.ts [rows]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mergeSinkLookups, type SinkCandidate, sinkLookup } from '@driftline/join';
import { ClickHousePredictionStore, createClickHouse, migrate, migrations } from '@driftline/warehouse';

const DAY = 86_400_000;
const SPAN = 30 * DAY;
const T0 = Date.UTC(2026, 10, 1);
const NOW = T0 + SPAN;
const BATCH = 500;
const config = { maxDelayMs: 7 * DAY, graceMs: 300_000, tombstoneMs: 7_200_000, maxFutureMs: 3_600_000 };

/** One case's figures: the median of 15 look-ups of 500, and the rows ClickHouse read for the last. */
export interface SinkLookupFigure {
  readonly rows: number;
  readonly name: string;
  readonly medianMs: number;
  readonly found: number;
  readonly rowsRead: number;
}

/**
 * The look-up's cost in five cases: a backfill, copies in one stretch and spread, and label
 * batches read 12 h and 6 d after their event times whose predictions the join state does not
 * know (absent or expired: those alone are looked up; a label whose prediction is pending is not).
 */
export async function benchSinkLookup(rows = 10_000_000): Promise<SinkLookupFigure[]> {
  // As ClickHouse computes it (UInt64): i × SPAN passes 2^53 for i above 3.5 M.
  const timeOf = (i: number) => T0 + Number((BigInt(i) * BigInt(SPAN)) / BigInt(rows));
  const figures: SinkLookupFigure[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'bench-sink-lookup-'));
  const ch = await createClickHouse({ mode: 'embedded', path: dir, database: 'bench', timeoutMs: 600_000 });
  try {
    await migrate(ch, migrations);
    const t = `toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalMillisecond(intDiv(number * ${SPAN}, ${rows}))`;
    await ch.command(
      `INSERT INTO ${ch.table('labeled_predictions')}
       (model, model_version, prediction_id, entity_id, prediction_time, label_time, features, prediction, label, joined_at)
     SELECT 'm', if(number % 3 = 0, 'v1', 'v2'), concat('p-', toString(number)), 'e', ${t}, ${t}, '{}', 0.5, 1, now64(3)
     FROM numbers(${rows})`,
    );
    await ch.command(
      `INSERT INTO ${ch.table('unlabeled_predictions')}
       (model, model_version, prediction_id, entity_id, prediction_time, deadline, expired_at, features, prediction)
     SELECT 'm', 'v1', concat('u-', toString(number)), 'e', ${t}, ${t}, now64(3), '{}', 0.5 FROM numbers(${rows / 10})`,
    );
    for (const table of ['labeled_predictions', 'unlabeled_predictions']) {
      await ch.command(`OPTIMIZE TABLE ${ch.table(table)} FINAL`);
    }
    let last: { sql: string; params: Record<string, unknown> } | undefined;
    const store = new ClickHousePredictionStore({
      ...ch,
      select: (sql, params = {}) => {
        last = { sql, params };
        return ch.select(sql, params);
      },
    });
    // Rows ClickHouse read for the last look-up (run once more for its statistics).
    const rowsRead = async () => {
      if (last === undefined) return 0;
      const result = (await ch.selectTyped(last.sql, last.params)) as { statistics?: { rows_read?: number } };
      return result.statistics?.rows_read ?? -1;
    };
    // Labels are looked up as the engine does once their state is read: absent here.
    const measure = async (name: string, batch: () => SinkCandidate[]) => {
      const ms: number[] = [];
      let found = 0;
      for (let n = 0; n < 15; n++) {
        const lookupOf = (r: SinkCandidate) =>
          r.kind === 'label' ? sinkLookup(r, NOW, config, { tag: undefined }) : sinkLookup(r, NOW, config);
        const lookups = mergeSinkLookups(batch().flatMap((r) => lookupOf(r) ?? [])).map((l) => ({
          model: l.model,
          predictionId: l.id,
          ...(l.from === undefined ? {} : { from: l.from }),
          ...(l.to === undefined ? {} : { to: l.to }),
        }));
        const started = performance.now();
        found = (await store.writtenPredictionRows(lookups)).length;
        ms.push(performance.now() - started);
      }
      ms.sort((a, b) => a - b);
      const median = Math.round(ms[Math.floor(ms.length / 2)]! * 10) / 10;
      figures.push({ rows, name, medianMs: median, found, rowsRead: await rowsRead() });
    };
    const prediction = (id: string, eventTime: number): SinkCandidate => ({
      kind: 'prediction',
      model: 'm',
      id,
      eventTime,
      replayed: false,
    });
    let next = Math.floor(rows / 3);
    // A backfill of predictions ten to twenty days old: consecutive, none in the sink yet.
    await measure('backfill predictions, not written', () =>
      Array.from({ length: BATCH }, () => {
        const i = next++;
        return prediction(`q-${i}`, timeOf(i));
      }),
    );
    // A producer re-sending a stretch of old predictions: all written.
    await measure('copies of written predictions, consecutive', () =>
      Array.from({ length: BATCH }, () => {
        const i = next++;
        return prediction(`p-${i}`, timeOf(i));
      }),
    );
    await measure('copies of written predictions, spread over 30 days', () =>
      Array.from({ length: BATCH }, () => {
        const i = Math.floor(Math.random() * rows);
        return prediction(`p-${i}`, timeOf(i));
      }),
    );
    // Labels whose prediction has no state (never read, or its tombstone gone), read 12 h and 6 d
    // after their event times: each reads back as far as its lag less grace + tombstone TTL (a
    // label whose prediction is pending is not looked up at all).
    for (const lagHours of [12, 144]) {
      await measure(`labels read ${lagHours} h late, prediction not in the join state`, () =>
        Array.from({ length: BATCH }, (_, k) => ({
          kind: 'label' as const,
          model: 'm',
          id: `x-${next++}`,
          eventTime: NOW - lagHours * 3_600_000 - k * 1_000,
          replayed: false,
        })),
      );
    }
  } finally {
    await ch.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return figures;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const figure of await benchSinkLookup(Number(process.argv[2] ?? 10_000_000))) {
    process.stdout.write(`${JSON.stringify(figure)}\n`);
  }
}
