import { featureApi } from '@driftline/feature-api';
import { featureMaterializer } from '@driftline/feature-materializer';
import { labelJoinerService } from '@driftline/label-joiner';
import type { ServiceDefinition } from '@driftline/service';

/** Every service the runner knows, in start order. Each lives in services/<name>. */
export const allServices: ReadonlyArray<ServiceDefinition<never, unknown>> = [
  labelJoinerService as unknown as ServiceDefinition<never, unknown>,
  featureMaterializer as unknown as ServiceDefinition<never, unknown>,
  featureApi as unknown as ServiceDefinition<never, unknown>,
];
