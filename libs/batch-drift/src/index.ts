export { type FloatBits, floatText, integerText } from '@driftline/stats';
export {
  type ColumnDrift,
  columnDrift,
  DEFAULT_MIN_ROWS,
  DEFAULT_MISSING_THRESHOLD,
  type DriftOptions,
  tableDrift,
} from './column-drift.js';
export {
  applyTableOptions,
  type Column,
  checkTextRows,
  listItem,
  MAX_TEXT_ROWS,
  parseNameList,
  quotedName,
  shellWord,
  shortName,
  suggestedOption,
  type TableOptions,
  type TimeKind,
  typeColumns,
} from './columns.js';
export { type CsvOptions, csvColumns } from './csv.js';
export { type ColumnBin, type ColumnDistribution, columnDistribution } from './distributions.js';
export { datasetDrift, type EvidentlyStattest } from './evidently.js';
export { floatColumnsAtWidth } from './narrow-float.js';
export { profilesFromColumns, profilesFromCsv, type ReferenceColumns } from './reference-profiles.js';
export { timeColumnsAsNumbers, timeTextValue } from './time-text.js';
