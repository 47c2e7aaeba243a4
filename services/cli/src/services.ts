import type { ServiceDefinition } from '@driftline/service';

/** Every service the runner knows, in start order. Each lives in services/<name>. */
export const allServices: ReadonlyArray<ServiceDefinition<never, unknown>> = [];
