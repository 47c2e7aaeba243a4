// Side-by-side: `driftline drift` vs Evidently's data drift report on the same generated pairs of
// CSV files: 200,000 rows × 20 numeric columns (5 shifted), and the mixed table of mixed.ts
// (300,000 rows × 40 columns: 30 numeric of varied shapes, 10 categorical), where driftline runs
// with `--stattest evidently` and the bench reports how many column verdicts agree with Evidently's.
// Both timings include reading the CSV files; Evidently's Python import time is reported apart.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SeededRandom } from '@driftline/test-support/random';
import { median } from '../stats.js';
import { writeMixed } from './mixed.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

// Deterministic data: the shared seeded PRNG and its Irwin–Hall normals.
function generate(path: string, rows: number, columns: number, shifted: number, seed: number): void {
  const rng = new SeededRandom(seed);
  const normal = () => rng.normal();
  const lines: string[] = [Array.from({ length: columns }, (_, c) => `f${c}`).join(',')];
  for (let r = 0; r < rows; r++) {
    const cells: string[] = [];
    for (let c = 0; c < columns; c++) cells.push((normal() * (1 + c / 10) + (c < shifted ? 0.5 : 0) + c).toFixed(6));
    lines.push(cells.join(','));
  }
  writeFileSync(path, `${lines.join('\n')}\n`);
}

export async function benchDriftCli(
  options: { rows?: number; mixedRows?: number; repeats?: number } = {},
): Promise<Record<string, number | string>> {
  const rows = options.rows ?? 200_000;
  const repeats = options.repeats ?? 3;
  const dir = join(root, '.cache', 'bench-drift-cli');
  mkdirSync(dir, { recursive: true });
  const ref = join(dir, `ref-${rows}.csv`);
  const cur = join(dir, `cur-${rows}.csv`);
  if (!existsSync(ref)) generate(ref, rows, 20, 0, 11);
  if (!existsSync(cur)) generate(cur, rows, 20, 5, 23);

  const ours: number[] = [];
  let drifted = 0;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    const { stdout } = await run(
      process.execPath,
      // The compiled bin, as users run it (`make bench` builds first): start-up is part of the time.
      ['services/cli/bin/driftline.js', 'drift', '--reference', ref, '--current', cur, '--json'],
      { cwd: root, maxBuffer: 64 * 1024 * 1024 },
    );
    ours.push((performance.now() - t0) / 1000);
    drifted = stdout
      .trim()
      .split('\n')
      .filter((l) => (JSON.parse(l) as { drifted: boolean }).drifted).length;
  }

  const interpreter = await evidentlyInterpreter();
  const theirs: number[] = [];
  let evidentlyDrifted = -1;
  let evidentlyVersion = '';
  for (let i = 0; i < repeats; i++) {
    const { stdout } = await run(interpreter, [join(here, 'evidently_drift.py'), ref, cur], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024,
    });
    const r = JSON.parse(stdout.trim().split('\n').pop()!) as {
      seconds: number;
      drifted_columns: number;
      evidently: string;
    };
    theirs.push(r.seconds);
    evidentlyDrifted = r.drifted_columns;
    evidentlyVersion = r.evidently;
  }
  const seconds = median(ours);
  const evidentlySeconds = median(theirs);
  const mixed = await benchMixed(dir, interpreter, options.mixedRows ?? 300_000, repeats);
  return {
    'drift_cli.rows': rows,
    'drift_cli.columns': 20,
    'drift_cli.seconds': Number(seconds.toFixed(3)),
    'drift_cli.evidently_seconds': Number(evidentlySeconds.toFixed(3)),
    'drift_cli.speedup_vs_evidently': Number((evidentlySeconds / seconds).toFixed(2)),
    'drift_cli.drifted_columns': drifted,
    'drift_cli.evidently_drifted_columns': evidentlyDrifted,
    'drift_cli.evidently_version': evidentlyVersion,
    ...mixed,
  };
}

// Prints the process's peak RSS (KiB) and CPU time (µs, all threads) on stderr at exit: how the
// child reports its peak memory, and its CPU time — the fairer figure when the machine is shared.
const PEAK_RSS = `data:text/javascript,process.on('exit',()=>{const u=process.resourceUsage();process.stderr.write('\\npeak_rss_kib '+u.maxRSS+' cpu_us '+(u.userCPUTime+u.systemCPUTime)+'\\n')})`;

interface EvidentlyRun {
  seconds: number;
  cpu_seconds: number;
  peak_rss_mb: number;
  columns: Record<string, { method: string; score: number; threshold: number; drifted: boolean }>;
}

/** The 300,000 × 40 mixed pair: driftline `--stattest evidently` vs Evidently's DataDriftPreset. */
async function benchMixed(
  dir: string,
  interpreter: string,
  rows: number,
  repeats: number,
): Promise<Record<string, number>> {
  const ref = join(dir, `mixed-ref-${rows}.csv`);
  const cur = join(dir, `mixed-cur-${rows}.csv`);
  if (!existsSync(ref)) await writeMixed(ref, rows, 31, false);
  if (!existsSync(cur)) await writeMixed(cur, rows, 47, true);

  const ours: number[] = [];
  const rss: number[] = [];
  const cpu: number[] = [];
  let verdicts = new Map<string, boolean>();
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    const { stdout, stderr } = await run(
      process.execPath,
      [
        '--import',
        PEAK_RSS,
        'services/cli/bin/driftline.js',
        'drift',
        '--reference',
        ref,
        '--current',
        cur,
        '--stattest',
        'evidently',
        '--json',
      ],
      { cwd: root, maxBuffer: 64 * 1024 * 1024 },
    );
    ours.push((performance.now() - t0) / 1000);
    const usage = /peak_rss_kib (\d+) cpu_us (\d+)/.exec(stderr);
    rss.push(Number(usage?.[1] ?? Number.NaN) / 1024);
    cpu.push(Number(usage?.[2] ?? Number.NaN) / 1e6);
    verdicts = new Map(
      stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { column: string; drifted: boolean })
        .map((r) => [r.column, r.drifted]),
    );
  }

  const theirs: EvidentlyRun[] = [];
  for (let i = 0; i < repeats; i++) {
    const { stdout } = await run(interpreter, [join(here, 'evidently_drift.py'), ref, cur], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024,
    });
    theirs.push(JSON.parse(stdout.trim().split('\n').pop()!) as EvidentlyRun);
  }
  const columns = theirs[0]!.columns;
  const names = Object.keys(columns);
  const agree = names.filter((c) => verdicts.get(c) === columns[c]!.drifted).length;
  const seconds = median(ours);
  const evidentlySeconds = median(theirs.map((r) => r.seconds));
  return {
    'drift_cli.mixed.rows': rows,
    'drift_cli.mixed.columns': names.length,
    'drift_cli.mixed.seconds': Number(seconds.toFixed(3)),
    'drift_cli.mixed.evidently_seconds': Number(evidentlySeconds.toFixed(3)),
    'drift_cli.mixed.speedup_vs_evidently': Number((evidentlySeconds / seconds).toFixed(2)),
    'drift_cli.mixed.cpu_seconds': Number(median(cpu).toFixed(3)),
    'drift_cli.mixed.evidently_cpu_seconds': Number(median(theirs.map((r) => r.cpu_seconds)).toFixed(3)),
    'drift_cli.mixed.cpu_speedup_vs_evidently': Number(
      (median(theirs.map((r) => r.cpu_seconds)) / median(cpu)).toFixed(2),
    ),
    'drift_cli.mixed.peak_rss_mb': Math.round(median(rss)),
    'drift_cli.mixed.evidently_peak_rss_mb': Math.round(median(theirs.map((r) => r.peak_rss_mb))),
    'drift_cli.mixed.verdicts_agree_with_evidently': Number((agree / names.length).toFixed(4)),
    'drift_cli.mixed.drifted_columns': [...verdicts.values()].filter(Boolean).length,
    'drift_cli.mixed.evidently_drifted_columns': names.filter((c) => columns[c]!.drifted).length,
  };
}

async function evidentlyInterpreter(): Promise<string> {
  const { stdout } = await run('bash', [join(here, 'setup-venv.sh')], { cwd: root, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim().split('\n').pop()!;
}

// `tsx --conditions=source bench/drift-cli/index.ts [mixed]`: every key, or the mixed table's only.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = join(root, '.cache', 'bench-drift-cli');
  mkdirSync(dir, { recursive: true });
  const result =
    process.argv[2] === 'mixed'
      ? await benchMixed(dir, await evidentlyInterpreter(), 300_000, 3)
      : await benchDriftCli();
  console.log(JSON.stringify(result));
}
