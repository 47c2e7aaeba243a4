export { type StackConfig, StackConfigError } from './config.js';
export {
  DEFAULT_SERVICE_TARGET,
  ensureMonitoringDist,
  type MonitoringDist,
  type MonitoringEndpoints,
  type MonitoringUpOptions,
  monitoringDown,
  monitoringStatus,
  monitoringUp,
  writeScrapeTargets,
} from './monitoring.js';
export { pickFreePort } from './ports.js';
export { startedByThisProcess } from './proc.js';
export { alterScramUsers, type ScramChange, type ScramMechanism } from './scram.js';
export {
  type AbortOnSignalsOptions,
  abortOnSignals,
  Interrupted,
  SIGNAL_EXIT_CODES,
  type StopSignal,
  unlessAborted,
} from './signals.js';
export {
  type ComponentOptions,
  endpointsFromEnv,
  envLines,
  type KafkaBroker,
  type KafkaBrokerOptions,
  pauseComponent,
  restartComponent,
  type StackComponent,
  type StackDownOptions,
  type StackEndpoints,
  type StackStatus,
  type StackUpOptions,
  type StackUpResult,
  stackDown,
  stackRelease,
  stackStatus,
  stackUp,
  startKafkaBroker,
} from './stack.js';
/** Runs a command to completion: exit code and stdout+stderr (never rejects on a non-zero exit). */
export { run } from './util.js';
