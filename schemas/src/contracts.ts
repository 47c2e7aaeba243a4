import {
  type DriftAlert,
  driftAlertSchema,
  type FeatureEvent,
  featureEventSchema,
  type LabelEvent,
  labelEventSchema,
  type ModelEvent,
  modelEventSchema,
  type PredictionEvent,
  predictionEventSchema,
  type RetrainRequest,
  retrainRequestSchema,
} from './generated.js';

/** A topic's contract: its Avro schema, default topic name and how a record's key is derived. */
export interface Contract<T> {
  readonly name: string;
  readonly defaultTopic: string;
  readonly schema: { readonly type: 'record'; readonly name: string; readonly namespace: string };
  /** Partitioning key. Predictions and labels share prediction_id so the join stays partition-local. */
  readonly key: (value: T) => string;
  /** Topic configs set when whoever comes first creates the topic (never altered after). */
  readonly topicConfig?: Readonly<Record<string, string>>;
}

function contract<T>(c: Contract<T>): Contract<T> {
  return c;
}

export const contracts = {
  feature: contract<FeatureEvent>({
    name: 'feature',
    defaultTopic: 'features.v1',
    schema: featureEventSchema,
    key: (e) => e.entity_id,
  }),
  prediction: contract<PredictionEvent>({
    name: 'prediction',
    defaultTopic: 'predictions.v1',
    schema: predictionEventSchema,
    key: (e) => e.prediction_id,
  }),
  label: contract<LabelEvent>({
    name: 'label',
    defaultTopic: 'labels.v1',
    schema: labelEventSchema,
    key: (e) => e.prediction_id,
  }),
  alert: contract<DriftAlert>({
    name: 'alert',
    defaultTopic: 'alerts.v1',
    schema: driftAlertSchema,
    key: (e) => e.model,
  }),
  retrain: contract<RetrainRequest>({
    name: 'retrain',
    defaultTopic: 'retrain.v1',
    schema: retrainRequestSchema,
    key: (e) => e.model,
  }),
  model: contract<ModelEvent>({
    name: 'model',
    defaultTopic: 'models.v1',
    schema: modelEventSchema,
    key: (e) => e.model,
    // The model-server and the drift-monitor rebuild their stages and promotions from all of it on
    // every start: kept for good (a few events per model version), not the broker's 7 days.
    topicConfig: { 'retention.ms': '-1', 'retention.bytes': '-1' },
  }),
} as const;

export type ContractName = keyof typeof contracts;

/** Confluent TopicNameStrategy: the value subject of a topic. */
export function valueSubject(topic: string): string {
  return `${topic}-value`;
}

/** Dead-letter topic of a topic. */
export function deadLetterTopic(topic: string): string {
  return `${topic}.dlq`;
}
