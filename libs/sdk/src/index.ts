export {
  createDriftlineProducer,
  type DriftlineProducer,
  type DriftlineProducerOptions,
  type FeatureEventInput,
  type LabelEventInput,
  type PredictionEventInput,
} from './producer.js';
