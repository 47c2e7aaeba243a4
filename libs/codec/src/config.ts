import { ConfigError, envField } from '@driftline/core';
import { z } from 'zod';
import { DEFAULT_REGISTRY_TIMEOUT_MS, type RegistryConfig } from './registry.js';

/** Environment variables of the Schema Registry connection (services and SDK users alike). */
export const registryEnvShape = {
  /** Confluent-compatible API base URL, http(s) (Apicurio: `http://host:port/apis/ccompat/v7`). */
  DRIFTLINE_SCHEMA_REGISTRY_URL: envField.httpUrl(),
  DRIFTLINE_SCHEMA_REGISTRY_USERNAME: envField.name().optional(),
  DRIFTLINE_SCHEMA_REGISTRY_PASSWORD: z.string().optional(),
  /** Bound on every registry call (100 ms to MAX_TIMER_MS); one that exceeds it fails as retriable (TIMEOUT). */
  DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT: envField.timeout().default(DEFAULT_REGISTRY_TIMEOUT_MS),
};

/**
 * Credentials in the URL (`https://user:pass@host/…`) become basic auth: fetch refuses a URL with
 * credentials (and its error would print them). Explicit USERNAME/PASSWORD variables win.
 */
export function toRegistryConfig(env: z.infer<z.ZodObject<typeof registryEnvShape>>): RegistryConfig {
  const url = new URL(env.DRIFTLINE_SCHEMA_REGISTRY_URL);
  const decoded = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      // `new URL` keeps a bad escape (`us%ZZ`); it was an "internal error: URI malformed".
      throw new ConfigError('DRIFTLINE_SCHEMA_REGISTRY_URL', 'its credentials are not valid percent-encoding');
    }
  };
  const fromUrl = {
    username: url.username === '' ? undefined : decoded(url.username),
    password: url.password === '' ? undefined : decoded(url.password),
  };
  url.username = '';
  url.password = '';
  const username = env.DRIFTLINE_SCHEMA_REGISTRY_USERNAME ?? fromUrl.username;
  const password = env.DRIFTLINE_SCHEMA_REGISTRY_PASSWORD ?? fromUrl.password;
  return {
    url:
      fromUrl.username === undefined && fromUrl.password === undefined ? env.DRIFTLINE_SCHEMA_REGISTRY_URL : url.href,
    timeoutMs: env.DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
  };
}
