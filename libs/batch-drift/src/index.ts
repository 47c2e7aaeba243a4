export { type ColumnDrift, columnDrift, type DriftOptions, tableDrift } from './column-drift.js';
export { type Column, typeColumns } from './columns.js';
