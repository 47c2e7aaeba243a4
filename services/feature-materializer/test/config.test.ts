import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { featureMaterializer, materializerEnvShape } from '../src/service.js';

const viewsFile = join(mkdtempSync(join(tmpdir(), 'materializer-config-')), 'views.json');
writeFileSync(viewsFile, JSON.stringify({ views: [{ name: 'v', entity: 'id', features: { x: 'double' } }] }));
const configure = (env: Record<string, string>) =>
  featureMaterializer.configure(
    parseEnv(materializerEnvShape, {
      DRIFTLINE_FEATURE_VIEWS: viewsFile,
      DRIFTLINE_REDIS_URL: 'redis://127.0.0.1:6379',
      ...env,
    }) as never,
  );

describe('feature-materializer configuration', () => {
  it('refuses a padded or blank consumer group, naming the variable: " g " is another group', () => {
    expect(configure({}).groupId).toBe('driftline-feature-materializer');
    expect(configure({ DRIFTLINE_MATERIALIZER_GROUP: 'fm a' }).groupId).toBe('fm a');
    for (const bad of [' x', 'x ', '\tx', '   ']) {
      expect(() => configure({ DRIFTLINE_MATERIALIZER_GROUP: bad })).toThrow(/^DRIFTLINE_MATERIALIZER_GROUP: must not/);
    }
  });
});
