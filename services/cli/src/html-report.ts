import { renderTableReport, type TableReportData } from '@driftline/report';
import { writeOutput } from './output-file.js';

/**
 * Writes the two-table HTML report of `driftline drift --html FILE` to a path checked by
 * `outputFile` (its directory must exist); a refusal (EACCES, ENOSPC …) is a usage error naming --html.
 */
export function writeTableReport(path: string, data: TableReportData): void {
  writeOutput('--html', path, renderTableReport(data));
}
