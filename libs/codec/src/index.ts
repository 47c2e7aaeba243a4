export {
  type CodecOptions,
  NEW_ID_GRACE_GAP_MS,
  NEW_ID_GRACE_MS,
  NEW_ID_SPAN,
  SCHEMA_ID_RECHECK_MS,
  SCHEMA_ID_RECHECK_WAIT_MS,
  SchemaRegistryCodec,
  type SchemaSource,
  type TopicCodec,
  UNKNOWN_ID_TTL_MS,
} from './codec.js';
export { registryEnvShape, toRegistryConfig } from './config.js';
export type { RegistryConfig } from './registry.js';
