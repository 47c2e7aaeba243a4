import { renderTableReport, type TableReportData } from '@driftline/report';
import { writeOutput } from './output-file.js';

/**
 * Writes the two-table HTML report of `driftline drift --html FILE` to a path checked by
 * `outputFile` (its directory must exist); a refusal (EACCES …) is a usage error naming --html; a full disk (ENOSPC …) exits 1, the previous page kept.
 */
export function writeTableReport(path: string, data: TableReportData): void {
  writeOutput('--html', path, renderTableReport(data));
}
