import { envField, redisEnvShape } from '@driftline/core';
import { z } from 'zod';
import { isValidKeyPrefix } from './keys.js';

/** Variables of the online store, shared by the feature materializer and the feature API. */
export const onlineStoreEnvShape = {
  /** Path of the feature view file (YAML or JSON). */
  DRIFTLINE_FEATURE_VIEWS: envField.string(),
  ...redisEnvShape,
  /** First part of every key (isolates deployments and tests sharing one Redis). */
  DRIFTLINE_FEATURE_KEY_PREFIX: z
    .string()
    .refine(isValidKeyPrefix, 'letters, digits, dot, dash, underscore only (1..64)')
    .default('dl'),
};
