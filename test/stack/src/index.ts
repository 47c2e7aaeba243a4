export type { StackConfig } from './config.js';
export {
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
