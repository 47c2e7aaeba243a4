export {
  DEFAULT_APICURIO_VERSION,
  DEFAULT_KAFKA_VERSION,
  DEFAULT_TIMEOUT_MS,
  loadConfig,
  STACK_ENV_VARS,
  type StackConfig,
} from './config.js';
export {
  endpointsForPorts,
  endpointsFromEnv,
  envLines,
  type StackDownOptions,
  type StackEndpoints,
  type StackStatus,
  type StackUpOptions,
  type StackUpResult,
  stackDown,
  stackRelease,
  stackStatus,
  stackUp,
} from './stack.js';
