import { envField } from '@driftline/core';
import { z } from 'zod';
import type { RegistryConfig } from './codec.js';

/** Environment variables of the Schema Registry connection (services and SDK users alike). */
export const registryEnvShape = {
  /** Confluent-compatible API base URL (Apicurio: `http://host:port/apis/ccompat/v7`). */
  DRIFTLINE_SCHEMA_REGISTRY_URL: envField.url(),
  DRIFTLINE_SCHEMA_REGISTRY_USERNAME: envField.string().optional(),
  DRIFTLINE_SCHEMA_REGISTRY_PASSWORD: z.string().optional(),
};

export function toRegistryConfig(env: z.infer<z.ZodObject<typeof registryEnvShape>>): RegistryConfig {
  return {
    url: env.DRIFTLINE_SCHEMA_REGISTRY_URL,
    ...(env.DRIFTLINE_SCHEMA_REGISTRY_USERNAME === undefined
      ? {}
      : { username: env.DRIFTLINE_SCHEMA_REGISTRY_USERNAME }),
    ...(env.DRIFTLINE_SCHEMA_REGISTRY_PASSWORD === undefined
      ? {}
      : { password: env.DRIFTLINE_SCHEMA_REGISTRY_PASSWORD }),
  };
}
