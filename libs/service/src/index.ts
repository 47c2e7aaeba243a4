export { type CommonConfig, commonEnvShape } from './common-config.js';
export { FOREIGN_ENV_PREFIXES, knownEnvNames, rejectSharedPorts, rejectUnknownDriftlineEnv } from './env-names.js';
export type { ConsumerFetch } from './fetch-heap.js';
export type { ResourceConfigs } from './resource-config.js';
export {
  parseRunnerEnv,
  type Runner,
  type RunnerEnv,
  type RunnerOptions,
  StartupTimeoutError,
  selectServices,
  startRunner,
} from './runner.js';
export {
  type ConsumeOptions,
  defineService,
  type RunningService,
  type ServiceContext,
  type ServiceDefinition,
  type ServiceNeed,
} from './service.js';
