export { clickhouseHostEnvShape, toClickHouseHostOptions } from './config.js';
export {
  CLICKHOUSE_HOST_DEFAULTS,
  type ClickHouseHost,
  type ClickHouseHostOptions,
  startClickHouseHost,
} from './server.js';
