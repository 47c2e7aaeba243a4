export { type ClickHouse, type ClickHouseClient, createClickHouse } from './client.js';
export { type ClickHouseConfig, clickhouseEnvShape, toClickHouseConfig } from './config.js';
export { type Migration, migrate } from './migrate.js';
export { chTime } from './time.js';
