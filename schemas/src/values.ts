import type { FeatureEvent } from './generated.js';

/**
 * One feature value as every contract carries it (the Avro union null | double | string | boolean
 * of the `features` maps of feature and prediction events). The one FeatureValue of driftline:
 * online rows, drift summaries and training sets all use it.
 */
export type FeatureValue = FeatureEvent['features'][string];
