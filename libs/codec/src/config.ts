import { envField } from '@driftline/core';
import { z } from 'zod';
import { DEFAULT_REGISTRY_TIMEOUT_MS, type RegistryConfig } from './registry.js';

/** Environment variables of the Schema Registry connection (services and SDK users alike). */
export const registryEnvShape = {
  /** Confluent-compatible API base URL (Apicurio: `http://host:port/apis/ccompat/v7`). */
  DRIFTLINE_SCHEMA_REGISTRY_URL: envField.url(),
  DRIFTLINE_SCHEMA_REGISTRY_USERNAME: envField.string().optional(),
  DRIFTLINE_SCHEMA_REGISTRY_PASSWORD: z.string().optional(),
  /** Bound on every registry call; one that exceeds it fails as retriable (TIMEOUT). */
  DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT: envField.duration(1).default(DEFAULT_REGISTRY_TIMEOUT_MS),
};

export function toRegistryConfig(env: z.infer<z.ZodObject<typeof registryEnvShape>>): RegistryConfig {
  return {
    url: env.DRIFTLINE_SCHEMA_REGISTRY_URL,
    timeoutMs: env.DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT,
    ...(env.DRIFTLINE_SCHEMA_REGISTRY_USERNAME === undefined
      ? {}
      : { username: env.DRIFTLINE_SCHEMA_REGISTRY_USERNAME }),
    ...(env.DRIFTLINE_SCHEMA_REGISTRY_PASSWORD === undefined
      ? {}
      : { password: env.DRIFTLINE_SCHEMA_REGISTRY_PASSWORD }),
  };
}
