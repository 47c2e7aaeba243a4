import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { renderTableReport, type TableReportData } from '@driftline/report';

/** Writes the two-table HTML report of `driftline drift --html FILE` (creating its directory). */
export function writeTableReport(path: string, data: TableReportData): void {
  const out = resolve(path);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, renderTableReport(data));
}
