// Benchmark of one performance window's recompute: the labeled rows read from ClickHouse (the
// embedded engine) into columns and every metric computed, whole window and per segment, and the
// business outcome the estimator adds. Runs in a
// child process of its own (the embedded engine binds one data directory per process), which is
// also where its memory is measured:
//   tsx --conditions=source window-recompute.ts <dir> fill <rows> | measure
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { businessOutcome, computeWindow, valuedPoints } from '@driftline/performance';
import { ClickHousePredictionStore, createClickHouse, migrate, migrations } from '@driftline/warehouse';

const WINDOW_MS = 3_600_000;
const START = 1_764_000_000_000 - (1_764_000_000_000 % WINDOW_MS);
const COUNTRIES = ['US', 'FR', 'DE', 'BR', 'IN'];

interface Measured {
  readonly rows: number;
  readonly ms: number;
  /** Growth of the JS heap plus array buffers, sampled every millisecond, garbage included. */
  readonly jsPeakBytes: number;
  /** Growth of the process's peak resident set (the embedded engine's memory included). */
  readonly rssPeakBytes: number;
}

const clickhouse = (dir: string) =>
  createClickHouse({ mode: 'embedded', path: dir, database: 'bench', timeoutMs: 600_000 });

async function fill(dir: string, n: number): Promise<void> {
  const ch = await clickhouse(dir);
  await migrate(ch, migrations);
  const store = new ClickHousePredictionStore(ch);
  for (let i = 0; i < n; i += 50_000) {
    await store.insertJoined(
      Array.from({ length: Math.min(50_000, n - i) }, (_, k) => {
        const j = i + k;
        const p = ((j * 7919) % 1_000_003) / 1_000_003;
        return {
          prediction: {
            prediction_id: `p${j}`,
            model: 'm',
            model_version: 'v1',
            entity_id: `e${j % 1000}`,
            event_time: START + (j % WINDOW_MS),
            features: { country: COUNTRIES[j % 5] ?? 'US', x: j },
            prediction: p,
            predicted_class: null,
          },
          label: {
            prediction_id: `p${j}`,
            model: 'm',
            event_time: START + WINDOW_MS,
            label: (j * 31) % 97 < 97 * p ? 1 : 0,
          },
          joinedAt: START + WINDOW_MS + 1,
        };
      }),
    );
  }
  await ch.close();
}

async function measure(dir: string): Promise<Measured> {
  const ch = await clickhouse(dir);
  const rssPeak = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;
  const js = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const [jsBefore, rssBefore] = [js(), rssPeak()];
  let jsPeak = jsBefore;
  const sampler = setInterval(() => {
    jsPeak = Math.max(jsPeak, js());
  }, 1);
  const t0 = performance.now();
  const window = await new ClickHousePredictionStore(ch).readWindow(
    { model: 'm', modelVersion: 'v1', windowStart: START },
    WINDOW_MS,
    ['country'],
  );
  computeWindow({
    task: 'classification',
    threshold: 0.5,
    segmentFeatures: ['country'],
    maxSegments: 10,
    window,
    pending: 0,
  });
  businessOutcome(valuedPoints(window), { threshold: 0.5, falseAlarmCost: 1 }); // the estimator's part
  const ms = performance.now() - t0;
  clearInterval(sampler);
  jsPeak = Math.max(jsPeak, js());
  await ch.close();
  return { rows: window.labeledCount, ms, jsPeakBytes: jsPeak - jsBefore, rssPeakBytes: rssPeak() - rssBefore };
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/**
 * `joiner.window_recompute.rows_per_s` and `.js_peak_bytes_per_row` / `.rss_peak_bytes_per_row`
 * for a window of `rows` labeled predictions with one segment feature (medians of `repeats`, each
 * a fresh process).
 */
export function benchWindowRecompute(options: { rows?: number; repeats?: number } = {}): Record<string, number> {
  const rows = options.rows ?? 500_000;
  const dir = mkdtempSync(join(tmpdir(), 'bench-window-recompute-'));
  const self = fileURLToPath(import.meta.url);
  const run = (...args: string[]) =>
    execFileSync(process.execPath, [...process.execArgv, self, dir, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  try {
    run('fill', String(rows));
    const runs = Array.from({ length: options.repeats ?? 3 }, () => JSON.parse(run('measure')) as Measured);
    if (runs.some((r) => r.rows !== rows))
      throw new Error(`window recompute read ${runs.map((r) => r.rows)} rows, not ${rows}`);
    return {
      'joiner.window_recompute.rows': rows,
      'joiner.window_recompute.rows_per_s': Math.round(median(runs.map((r) => (rows / r.ms) * 1000))),
      'joiner.window_recompute.js_peak_bytes_per_row': Math.round(median(runs.map((r) => r.jsPeakBytes / rows))),
      'joiner.window_recompute.rss_peak_bytes_per_row': Math.round(median(runs.map((r) => r.rssPeakBytes / rows))),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [dir, mode, n] = process.argv.slice(2) as [string, string, string?];
  if (mode === 'fill') await fill(dir, Number(n));
  else process.stdout.write(`${JSON.stringify(await measure(dir))}\n`);
}
