import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

// The repo's own biome.json, applied to probe files placed at the paths the rules are about.
const root = resolve(import.meta.dirname, '../../..');
const biome = join(root, 'node_modules/.bin/biome');

interface Probe {
  readonly path: string;
  readonly source: string;
  readonly restricted: boolean;
}

const probes: Probe[] = [
  { path: 'libs/kafka/src/probe.ts', source: "import { Kafka } from 'kafkajs';", restricted: false },
  { path: 'libs/warehouse/src/probe.ts', source: "import { Kafka } from 'kafkajs';", restricted: true },
  { path: 'services/feature-api/src/probe.ts', source: "import { Kafka } from 'kafkajs';", restricted: true },
  { path: 'services/feature-api/test/probe.test.ts', source: "import { Kafka } from 'kafkajs';", restricted: true },
  { path: 'libs/online-store/src/probe.ts', source: "import { Redis } from 'ioredis';", restricted: false },
  { path: 'services/label-joiner/src/probe.ts', source: "import { Redis } from 'ioredis';", restricted: true },
  { path: 'test/stack/src/probe.ts', source: "import { Redis } from 'ioredis';", restricted: true },
  {
    path: 'libs/warehouse/src/probe.ts',
    source: "import { createClient } from '@clickhouse/client';",
    restricted: false,
  },
  {
    path: 'services/trainer/src/probe.ts',
    source: "import { createClient } from '@clickhouse/client';",
    restricted: true,
  },
  { path: 'bench/probe.ts', source: "import { createChdbConnection } from 'chdb/connection';", restricted: true },
  { path: 'services/trainer/src/probe.ts', source: "import { x } from '@driftline/drift-monitor';", restricted: true },
  {
    path: 'services/feature-materializer/test/probe.test.ts',
    source: "import { x } from '@driftline/feature-api';",
    restricted: true,
  },
  { path: 'services/cli/src/probe.ts', source: "import { x } from '@driftline/feature-api';", restricted: false },
  {
    path: 'services/drift-monitor/src/probe.ts',
    source: "import { createClickHouse } from '@driftline/warehouse';",
    restricted: true,
  },
  {
    path: 'services/drift-monitor/test/probe.test.ts',
    source: "import { createClickHouse } from '@driftline/warehouse';",
    restricted: false,
  },
  {
    path: 'libs/features/src/probe.ts',
    source: "import { createRedisOnlineStore } from '@driftline/online-store/redis';",
    restricted: true,
  },
  {
    path: 'bench/features/probe.ts',
    source: "import { startFeatureMaterializer } from '@driftline/feature-materializer';",
    restricted: true,
  },
  {
    path: 'bench/features/probe.ts',
    source: "import { startFeatureMaterializer } from '@driftline/feature-materializer/bench';",
    restricted: false,
  },
  { path: 'libs/stats/src/probe.ts', source: "import { x } from '@driftline/observability';", restricted: true },
  { path: 'libs/alerting/src/probe.ts', source: "import { request } from 'node:http';", restricted: true },
  {
    path: 'services/alert-router/src/probe.ts',
    source: "import { x } from '@driftline/retrain-trigger';",
    restricted: true,
  },
  { path: 'services/trainer/src/probe.ts', source: "import { x } from '@driftline/alert-router';", restricted: true },
  { path: 'libs/scoring/src/probe.ts', source: "import { x } from '@driftline/online-store';", restricted: true },
  { path: 'libs/quality/src/probe.ts', source: "import { x } from '@driftline/kafka';", restricted: true },
  { path: 'libs/skew/src/probe.ts', source: "import { x } from '@driftline/online-store';", restricted: true },
  {
    path: 'services/model-controller/src/probe.ts',
    source: "import { x } from '@driftline/model-server';",
    restricted: true,
  },
  {
    path: 'services/skew-monitor/test/probe.test.ts',
    source: "import { x } from '@driftline/model-controller';",
    restricted: true,
  },
  { path: 'services/trainer/src/probe.ts', source: "import { x } from '@driftline/skew-monitor';", restricted: true },
  { path: 'libs/drift/src/probe.ts', source: "import { x } from '@driftline/test-support/random';", restricted: true },
  {
    path: 'libs/drift/test/probe.test.ts',
    source: "import { x } from '@driftline/test-support/random';",
    restricted: false,
  },
];

interface Diagnostic {
  readonly category: string;
  readonly location: { readonly path: string };
}

// One biome run over every probe (each at its own file path), reading the JSON report.
let restrictedFiles: Set<string>;
const probeFile = (probe: Probe, i: number) => probe.path.replace(/probe(\.test)?\.ts$/, `probe-${i}$1.ts`);

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-lint-'));
  try {
    copyFileSync(join(root, 'biome.json'), join(dir, 'biome.json'));
    for (const [i, probe] of probes.entries()) {
      const file = join(dir, probeFile(probe, i));
      mkdirSync(dirname(file), { recursive: true });
      const name = /\{ (\w+) \}/.exec(probe.source)![1];
      writeFileSync(file, `${probe.source}\n\nexport const probe = ${name};\n`);
    }
    const result = spawnSync(biome, ['lint', '--reporter=json', '--max-diagnostics=none', '.'], {
      cwd: dir,
      encoding: 'utf8',
    });
    const report = JSON.parse(result.stdout) as { diagnostics: Diagnostic[] };
    const other = report.diagnostics.filter((d) => d.category !== 'lint/style/noRestrictedImports');
    if (other.length > 0) throw new Error(`probes fail other rules: ${JSON.stringify(other)}`);
    restrictedFiles = new Set(report.diagnostics.map((d) => d.location.path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('layering rules in biome.json', () => {
  for (const [i, probe] of probes.entries()) {
    const module = probe.source.split(' from ')[1]!.replace(/[';]/g, '');
    it(`${probe.restricted ? 'forbids' : 'allows'} ${module} in ${probe.path}`, () => {
      expect(restrictedFiles.has(probeFile(probe, i))).toBe(probe.restricted);
    });
  }
});
