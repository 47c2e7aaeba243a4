// Where `driftline drift` spends its time on two files: reading + typing each file (csvColumns),
// then the statistics of every column in both modes, then each column's share of the statistics
// (CPU seconds).
// Run: pnpm exec tsx --conditions=source bench/drift-cli/profile.ts REF.csv CUR.csv
// (add `node --cpu-prof` through NODE_OPTIONS for a profile to open in DevTools).
import { readFileSync } from 'node:fs';
import { csvColumns, tableDrift } from '@driftline/batch-drift';

const [refPath, curPath] = process.argv.slice(2);
if (refPath === undefined || curPath === undefined) {
  process.stderr.write('usage: profile.ts REF.csv CUR.csv\n');
  process.exit(2);
}
// CPU time of this thread (user + system): on a shared machine wall clock mostly measures the neighbours.
const time = <T>(f: () => T): [T, number] => {
  const t0 = process.cpuUsage();
  const out = f();
  const t = process.cpuUsage(t0);
  return [out, (t.user + t.system) / 1e6];
};
const [ref, readRef] = time(() => csvColumns(readFileSync(refPath), refPath));
const [cur, readCur] = time(() => csvColumns(readFileSync(curPath), curPath));
const [, driftline] = time(() => tableDrift(ref, cur));
const [, evidently] = time(() => tableDrift(ref, cur, { stattest: 'evidently' }));
const perColumn = ref
  .map((c) => {
    const other = cur.find((x) => x.name === c.name)!;
    const [, s] = time(() => tableDrift([c], [other]));
    return [c.name, c.kind, Number(s.toFixed(3))] as const;
  })
  .sort((a, b) => b[2] - a[2])
  .slice(0, 8);
process.stdout.write(
  `${JSON.stringify({
    read_reference_s: Number(readRef.toFixed(3)),
    read_current_s: Number(readCur.toFixed(3)),
    stats_driftline_s: Number(driftline.toFixed(3)),
    stats_evidently_s: Number(evidently.toFixed(3)),
    slowest_columns_driftline: perColumn,
    rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20),
  })}\n`,
);
