export {
  CLICKHOUSE,
  type ClickHouseTarget,
  type Dashboard,
  dashboards,
  PROMETHEUS,
  serialize,
} from './dashboards.js';
export {
  ALL_VALUE,
  type AllSelected,
  applyConditionalAll,
  expandGrafanaSql,
  expandMacros,
  type GrafanaQueryContext,
  interpolateVariables,
  type VariableValue,
} from './macros.js';
export { DASHBOARD_DIR, REPO_ROOT } from './paths.js';
export {
  migrateForDashboards,
  type Scenario,
  seedScenario,
} from './seed.js';
export { clickhouseQueriesOnDisk, constantsOnDisk, type DashboardQuery, dashboardQueries } from './walk.js';
