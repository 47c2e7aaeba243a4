import { alertRouterService } from '@driftline/alert-router';
import { driftMonitorService } from '@driftline/drift-monitor';
import { featureApi } from '@driftline/feature-api';
import { featureMaterializer } from '@driftline/feature-materializer';
import { labelJoinerService } from '@driftline/label-joiner';
import { modelControllerService } from '@driftline/model-controller';
import { modelServer } from '@driftline/model-server';
import { retrainTriggerService } from '@driftline/retrain-trigger';
import type { ServiceDefinition } from '@driftline/service';
import { skewMonitorService } from '@driftline/skew-monitor';
import { trainerService } from '@driftline/trainer';

/** Every service the runner knows, in start order. Each lives in services/<name>. */
export const allServices: ReadonlyArray<ServiceDefinition<never, unknown>> = [
  labelJoinerService as unknown as ServiceDefinition<never, unknown>,
  featureMaterializer as unknown as ServiceDefinition<never, unknown>,
  featureApi as unknown as ServiceDefinition<never, unknown>,
  modelServer as unknown as ServiceDefinition<never, unknown>,
  retrainTriggerService as unknown as ServiceDefinition<never, unknown>,
  modelControllerService as unknown as ServiceDefinition<never, unknown>,
  trainerService as unknown as ServiceDefinition<never, unknown>,
  driftMonitorService as unknown as ServiceDefinition<never, unknown>,
  skewMonitorService as unknown as ServiceDefinition<never, unknown>,
  alertRouterService as unknown as ServiceDefinition<never, unknown>,
];
