import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, silentLogger } from '@driftline/core';
import { startRunner } from '@driftline/service';
import { uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { featureApi } from '../src/service.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'feature-api-redis-db-'));
const views = join(dir, 'views.yaml');
writeFileSync(views, 'views:\n  - name: user\n    entity: user_id\n    features: { f0: double }\n');

describe('feature-api start-up on a Redis database the server refuses', () => {
  it('fails in one line naming DRIFTLINE_REDIS_URL (`/99` of 16: ioredis went on in database 0)', async () => {
    const outcome = await startRunner({
      services: [featureApi as never],
      logger: silentLogger,
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
        DRIFTLINE_REDIS_URL: `${stack.redisUrl.replace(/\/\d*$/, '')}/99`,
        DRIFTLINE_FEATURE_VIEWS: views,
        DRIFTLINE_TOPIC_PREFIX: `${uniqueName('rdb')}.`,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_FEATURE_API_PORT: '0',
        DRIFTLINE_STARTUP_TIMEOUT: '0',
      },
    }).then(
      async (runner) => {
        await runner.stop();
        return 'started';
      },
      (error: unknown) => error,
    );
    expect(outcome).toBeInstanceOf(ConfigError);
    expect((outcome as Error).message).toMatch(
      /^DRIFTLINE_REDIS_URL: the server refuses database 99 \(ERR DB index is out of range\)[^\n]*$/,
    );
  });
});
