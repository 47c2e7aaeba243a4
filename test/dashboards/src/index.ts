export {
  CLICKHOUSE,
  type ClickHouseTarget,
  type Dashboard,
  dashboards,
  PROMETHEUS,
  promql,
  serialize,
} from './dashboards.js';
export {
  applyConditionalAll,
  expandGrafanaSql,
  expandMacros,
  type GrafanaQueryContext,
  interpolateVariables,
  MACROS,
  type VariableValue,
} from './macros.js';
export { DASHBOARD_DIR, REPO_ROOT } from './paths.js';
export {
  existingTables,
  migrateForDashboards,
  random,
  repositoryMigrations,
  type Scenario,
  seedScenario,
  TABLES_READ,
} from './seed.js';
export { type DashboardQuery, dashboardQueries } from './walk.js';
