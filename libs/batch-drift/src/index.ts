export { type ColumnDrift, columnDrift, type DriftOptions, tableDrift } from './column-drift.js';
export { type Column, typeColumns } from './columns.js';
export { csvColumns } from './csv.js';
export { profilesFromCsv, type ReferenceColumns } from './reference-profiles.js';
