// Side-by-side: `driftline drift` vs Evidently's data drift report on the same generated pair of
// CSV files (200,000 rows × 20 numeric columns each; 5 columns shifted in the current file).
// Both timings include reading the CSV files; Evidently's Python import time is reported apart.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SeededRandom } from '@driftline/test-support/random';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

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
  options: { rows?: number; repeats?: number } = {},
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

  const { stdout: python } = await run('bash', [join(here, 'setup-venv.sh')], {
    cwd: root,
    maxBuffer: 16 * 1024 * 1024,
  });
  const interpreter = python.trim().split('\n').pop()!;
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
  return {
    'drift_cli.rows': rows,
    'drift_cli.columns': 20,
    'drift_cli.seconds': Number(seconds.toFixed(3)),
    'drift_cli.evidently_seconds': Number(evidentlySeconds.toFixed(3)),
    'drift_cli.speedup_vs_evidently': Number((evidentlySeconds / seconds).toFixed(2)),
    'drift_cli.drifted_columns': drifted,
    'drift_cli.evidently_drifted_columns': evidentlyDrifted,
    'drift_cli.evidently_version': evidentlyVersion,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await benchDriftCli()));
}
