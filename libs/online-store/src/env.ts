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
  /**
   * Read rows of key layout v1 (written before the upgrade to v2, not since) for entities a read
   * finds absent. Turn off once none remain: such a read is one round trip instead of two.
   */
  DRIFTLINE_FEATURE_READ_V1: envField.bool().default(true),
};
