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

/**
 * Entities the reads of one Redis online store have in flight at most by default
 * (DRIFTLINE_FEATURE_READ_IN_FLIGHT_ENTITIES, `maxReadEntitiesInFlight`): about what one connection
 * answers within the read command timeout (2 s) on a loaded 2-core machine (~14,000 entities a
 * second through the feature API there). Without a bound, the services' admission (4,096 requests
 * in flight, up to 1,000 entities each) queued every read on the connection at once, and past some
 * concurrency every read timed out together (a review: 128 clients of 1,000-entity batches,
 * goodput 18 -> 3-10 requests a second, 90 % 503s).
 */
export const DEFAULT_READ_ENTITIES_IN_FLIGHT = 16_384;

/**
 * Bytes of rows the reads of one Redis online store have in flight at most by default
 * (DRIFTLINE_FEATURE_READ_IN_FLIGHT_BYTES, `maxReadBytesInFlight`), each read weighed by the bytes
 * per entity its views' reads answered so far: one 1,000-entity read of 8 KB rows at a time, whose
 * commands then answer well within the 2 s read timeout on a loaded 2-core machine (1 or 4 such
 * readers there read the same ~3-4 reads a second; with 16 MiB, two at a time, readiness failed
 * for a moment in one run of the feature API's overload test at load ~30). Rows of ten doubles (~230 B) stay
 * bound by entities. Counting entities alone let 16 reads of 1,000 rows of 8 KB (128 MB) onto the
 * connection at once: none answered within 2 s (a review).
 */
export const DEFAULT_READ_BYTES_IN_FLIGHT = 8 * 1_048_576;

/**
 * Variables of the reads of the online store's serving paths (the feature API, the model server):
 * their bound on the reads in flight on their Redis connection.
 */
export const onlineReadEnvShape = {
  /** Most entities of reads in flight at once (a read of more goes alone). */
  DRIFTLINE_FEATURE_READ_IN_FLIGHT_ENTITIES: envField.int(1, 1_000_000).default(DEFAULT_READ_ENTITIES_IN_FLIGHT),
  /** Most bytes of rows (by the rows' sizes seen so far) of reads in flight at once (a read of more goes alone). */
  DRIFTLINE_FEATURE_READ_IN_FLIGHT_BYTES: envField.int(65_536, 4 * 1_073_741_824).default(DEFAULT_READ_BYTES_IN_FLIGHT),
};
