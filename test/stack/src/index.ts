export type { StackConfig } from './config.js';
export {
  type ComponentOptions,
  endpointsFromEnv,
  envLines,
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
} from './stack.js';
