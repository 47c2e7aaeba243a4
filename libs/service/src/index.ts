export { type CommonConfig, commonEnvShape, toCommonConfig } from './common-config.js';
export { type Runner, type RunnerOptions, selectServices, startRunner } from './runner.js';
export { defineService, type RunningService, type ServiceContext, type ServiceDefinition } from './service.js';
