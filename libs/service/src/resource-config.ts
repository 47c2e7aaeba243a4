import { type RegistryConfig, toRegistryConfig } from '@driftline/codec';
import { ConfigError, type Env, parseEnv } from '@driftline/core';
import { type KafkaConfig, toKafkaConfig } from '@driftline/kafka';
import { type ClickHouseConfig, toClickHouseConfig } from '@driftline/warehouse';
import { z } from 'zod';
import { needEnvShapes } from './common-config.js';
import type { ServiceNeed } from './service.js';

/** Connection settings of the shared resources the started services need (absent when none does). */
export interface ResourceConfigs {
  readonly kafka?: KafkaConfig;
  readonly registry?: RegistryConfig;
  readonly clickhouse?: ClickHouseConfig;
}

type Needing = ReadonlyArray<{ readonly name: string; readonly needs: readonly ServiceNeed[] }>;

/**
 * Parses the variables of each resource a started service needs; a missing or wrong one throws a
 * ConfigError naming the variable and the services that need it. Variables of resources nobody
 * needs are still checked when set (a typo in a value fails fast), but none is required.
 */
export function resolveResourceConfigs(env: Env, services: Needing): ResourceConfigs {
  const parse = <S extends z.ZodRawShape, C>(
    need: ServiceNeed,
    shape: S,
    convert: (v: z.infer<z.ZodObject<S>>) => C,
  ) => {
    const users = services.filter((s) => s.needs.includes(need)).map((s) => s.name);
    if (users.length === 0) {
      parseEnv(optionalShape(shape), env);
      return undefined;
    }
    try {
      return convert(parseEnv(shape, env));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      const reason = error.message.slice(error.field.length + 2);
      throw new ConfigError(
        error.field,
        `${reason} (required: ${users.join(', ')} ${users.length === 1 ? 'needs' : 'need'} ${need})`,
        {
          cause: error,
        },
      );
    }
  };
  const kafka = parse('kafka', needEnvShapes.kafka, toKafkaConfig);
  const registry = parse('registry', needEnvShapes.registry, toRegistryConfig);
  const clickhouse = parse('clickhouse', needEnvShapes.clickhouse, toClickHouseConfig);
  return {
    ...(kafka === undefined ? {} : { kafka }),
    ...(registry === undefined ? {} : { registry }),
    ...(clickhouse === undefined ? {} : { clickhouse }),
  };
}

function optionalShape(shape: z.ZodRawShape): z.ZodRawShape {
  return Object.fromEntries(Object.entries(shape).map(([name, field]) => [name, z.optional(field)]));
}
