// Prints vitest's JSON report as one plain closing line: "N passed, N failed, N skipped", and names
// any file that failed outside its tests (an import, a hook: its tests may all have passed).
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

// No report (vitest killed, or its global set-up failed): say so, never a previous run's numbers.
let report;
try {
  report = JSON.parse(readFileSync(process.argv[2] ?? 'test-artifacts/vitest.json', 'utf8'));
} catch {
  console.log('no test results: vitest wrote no report (see its output above)');
  process.exit(1);
}
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
// A file's result is "failed" when any of its tests failed or when it failed by itself.
const filesFailedAlone = (report.testResults ?? [])
  .filter((file) => file.status === 'failed' && !(file.assertionResults ?? []).some((t) => t.status === 'failed'))
  .map((file) => relative(process.cwd(), file.name));
const alone = filesFailedAlone.length === 0 ? '' : `; failed outside its tests: ${filesFailedAlone.join(', ')}`;
console.log(`${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped${alone}`);
process.exit(report.numFailedTests > 0 || report.numFailedTestSuites > 0 ? 1 : 0);
