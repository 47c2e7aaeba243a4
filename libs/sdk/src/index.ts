export type { RegistryConfig } from '@driftline/codec';
export type { KafkaClient, KafkaConfig } from '@driftline/kafka';
export { connectionFromEnv } from './env.js';
export {
  createDriftlineProducer,
  type DriftlineProducer,
  type DriftlineProducerOptions,
  type FeatureEventInput,
  type KafkaConnection,
  type LabelEventInput,
  type PredictionEventInput,
} from './producer.js';
