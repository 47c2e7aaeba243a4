export type { CommonConfig } from './common-config.js';
export type { ResourceConfigs } from './resource-config.js';
export { type Runner, type RunnerOptions, selectServices, startRunner } from './runner.js';
export {
  type ConsumeOptions,
  defineService,
  type RunningService,
  type ServiceContext,
  type ServiceDefinition,
  type ServiceNeed,
} from './service.js';
