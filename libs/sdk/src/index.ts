export type { RegistryConfig } from '@driftline/codec';
export type { KafkaClient, KafkaConfig } from '@driftline/kafka';
export type { FeatureEventInput, LabelEventInput, PredictionEventInput } from './defaults.js';
export { connectionFromEnv } from './env.js';
export {
  createDriftlineProducer,
  type DriftlineProducer,
  type DriftlineProducerOptions,
  type KafkaConnection,
} from './producer.js';
