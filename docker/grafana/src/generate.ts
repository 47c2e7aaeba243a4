import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dashboards, serialize } from './dashboards.js';
import { DASHBOARD_DIR, REPO_ROOT } from './paths.js';

const files = dashboards().map((d) => {
  const path = join(DASHBOARD_DIR, d.file);
  writeFileSync(path, serialize(d));
  return path;
});
// The repository's formatter owns the layout; the unit test compares parsed JSON.
execFileSync('pnpm', ['-s', 'exec', 'biome', 'format', '--write', ...files], { cwd: REPO_ROOT, stdio: 'inherit' });
for (const f of files) process.stdout.write(`wrote ${f}\n`);
