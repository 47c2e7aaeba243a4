import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFeatureViewsText } from '@driftline/features';
import { parsePolicyText } from '@driftline/policy';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const docker = resolve(dirname(fileURLToPath(import.meta.url)), '../../docker');
const compose = parse(readFileSync(join(docker, 'compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<
    string,
    {
      image?: string;
      build?: { context: string; dockerfile: string };
      command?: string[];
      environment?: Record<string, string>;
      volumes?: string[];
      depends_on?: Record<string, unknown> | string[];
      healthcheck?: unknown;
      ports?: string[];
    }
  >;
};
type ComposeService = (typeof compose.services)[string] & {
  deploy?: { resources?: { reservations?: { devices?: Array<{ driver?: string; capabilities?: string[] }> } } };
  entrypoint?: unknown;
};
const gpuOverride = parse(readFileSync(join(docker, 'compose.gpu.yml'), 'utf8')) as {
  services: Record<string, ComposeService & { build?: { args?: Record<string, string> } }>;
};

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function dockerfile(): Array<{ op: string; args: string }> {
  const text = readFileSync(join(docker, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [op = '', ...rest] = line.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

const driftlineServices = [
  'feature-materializer',
  'feature-api',
  'drift-monitor',
  'skew-monitor',
  'label-joiner',
  'retrain-trigger',
  'trainer',
  'alert-router',
  'model-server',
  'model-controller',
];

const composePlugin = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' }).status === 0;

describe('docker/compose.yml', () => {
  it.runIf(composePlugin)('is accepted by `docker compose config`', () => {
    execFileSync('docker', ['compose', '-f', join(docker, 'compose.yml'), 'config', '-q']);
  });

  it('runs the whole stack: Kafka (KRaft), a Schema Registry, Redis, ClickHouse, Prometheus, Grafana', () => {
    for (const name of ['kafka', 'schema-registry', 'redis', 'clickhouse', 'prometheus', 'grafana']) {
      expect(compose.services[name], name).toBeDefined();
    }
    expect(compose.services.kafka?.environment?.KAFKA_PROCESS_ROLES).toBe('broker,controller');
    for (const name of ['kafka', 'schema-registry', 'redis', 'clickhouse'])
      expect(compose.services[name]?.healthcheck, name).toBeDefined();
  });

  it("keeps the registry's schemas on a volume, with the ids every test uses (no legacy ids)", () => {
    // In memory, a registry restart renumbered the schemas: retained records no longer decoded.
    const registry = compose.services['schema-registry'];
    expect(registry?.environment).toMatchObject({ APICURIO_STORAGE_KIND: 'sql', APICURIO_STORAGE_SQL_KIND: 'h2' });
    expect(registry?.environment?.APICURIO_DATASOURCE_URL).toMatch(/^jdbc:h2:file:\/var\/lib\/apicurio-registry\//);
    expect(registry?.environment?.APICURIO_CCOMPAT_LEGACY_ID_MODE_ENABLED).toBeUndefined();
    expect(registry?.volumes).toContain('schema-registry-data:/var/lib/apicurio-registry');
    expect(registry?.depends_on).toMatchObject({
      'schema-registry-volume': { condition: 'service_completed_successfully' },
    });
  });

  it('sets FULL as the global compatibility: subjects only outside producers write had no check (found by a review)', () => {
    expect(compose.services['schema-registry']?.environment?.APICURIO_RULES_GLOBAL_COMPATIBILITY).toBe('FULL');
    const config = compose.services['schema-registry-config'] as ComposeService | undefined;
    expect(config?.entrypoint).toEqual(
      expect.arrayContaining(['PUT', '{"compatibility":"FULL"}', 'http://schema-registry:8080/apis/ccompat/v7/config']),
    );
    expect(config?.depends_on).toMatchObject({ 'schema-registry': { condition: 'service_healthy' } });
    for (const name of driftlineServices) {
      expect(compose.services[name]?.depends_on, name).toMatchObject({
        'schema-registry-config': { condition: 'service_completed_successfully' },
      });
    }
  });

  it('runs every service as its own container from one image with a target argument', () => {
    const images = new Set<string>();
    for (const name of driftlineServices) {
      const service = compose.services[name];
      expect(service, name).toBeDefined();
      images.add(service!.image!);
      expect(service!.command).toEqual(['run', name]);
      expect(service!.environment?.DRIFTLINE_KAFKA_BROKERS).toBe('kafka:9092');
      expect(service!.environment?.DRIFTLINE_CLICKHOUSE_URL).toBe('http://clickhouse:8123');
      expect(Object.keys(service!.depends_on ?? {})).toEqual(
        expect.arrayContaining(['kafka', 'schema-registry', 'redis', 'clickhouse']),
      );
    }
    expect([...images]).toEqual(['driftline:latest']);
    const build = compose.services['feature-materializer']?.build;
    expect(existsSync(resolve(docker, build!.context, build!.dockerfile))).toBe(true);
  });

  it('mounts only files that exist, and Prometheus scrapes every service', () => {
    for (const service of Object.values(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.')) expect(existsSync(resolve(docker, source)), source).toBe(true);
      }
    }
    const prometheus = parse(readFileSync(join(docker, 'prometheus/prometheus.yml'), 'utf8')) as {
      scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }>;
    };
    const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
    expect(targets.sort()).toEqual(driftlineServices.map((s) => `${s}:9464`).sort());
  });

  it('provisions the ClickHouse and Prometheus data sources for Grafana', () => {
    const ds = parse(readFileSync(join(docker, 'grafana/provisioning/datasources/datasources.yml'), 'utf8')) as {
      datasources: Array<{ type: string; uid: string }>;
    };
    expect(ds.datasources.map((d) => d.type).sort()).toEqual(['grafana-clickhouse-datasource', 'prometheus']);
  });

  it('ships feature views and a retrain policy that the services accept', () => {
    const views = parseFeatureViewsText(readFileSync(join(docker, 'config/feature-views.yaml'), 'utf8'));
    expect(views.views.map((v) => v.name)).toContain('user');
    const policy = parsePolicyText(readFileSync(join(docker, 'config/retrain-policy.yaml'), 'utf8'));
    expect(Object.keys(policy.models)).toContain('fraud');
    for (const name of driftlineServices) {
      expect(compose.services[name]?.environment?.DRIFTLINE_FEATURE_VIEWS).toBe('/etc/driftline/feature-views.yaml');
    }
  });

  it.each([
    ['feature-api', 'DRIFTLINE_FEATURE_API_TOKEN'],
    ['model-server', 'DRIFTLINE_MODEL_SERVER_TOKEN'],
  ])('publishes %s on loopback only unless it requires a bearer token (issue 11, defect 5)', (name, variable) => {
    const api = compose.services[name]!;
    const token = api.environment?.[variable];
    for (const port of api.ports ?? []) {
      // host_ip:host_port:container_port; without a host ip, docker binds 0.0.0.0 (and [::]).
      const parts = port.split(':');
      const hostIp = parts.length === 3 ? parts[0] : '0.0.0.0';
      if (hostIp !== '127.0.0.1' && hostIp !== '[::1]') {
        expect(token, `${name} publishes ${port} beyond loopback`).toMatch(/^\$\{[A-Z_]+:\?/);
      }
    }
    expect(api.ports?.length).toBeGreaterThan(0);
  });

  it('serves models from the artifacts the trainer writes, and sends Prometheus alerts to Alertmanager', () => {
    const volumeOf = (name: string) => compose.services[name]?.volumes?.find((v) => v.startsWith('models:'));
    expect(volumeOf('model-server')).toBe(volumeOf('trainer'));
    expect(compose.services['model-server']?.environment?.DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR).toBe(
      compose.services.trainer?.environment?.DRIFTLINE_TRAINER_ARTIFACT_DIR,
    );
    const prometheus = parse(readFileSync(join(docker, 'prometheus/prometheus.yml'), 'utf8')) as {
      alerting: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
    };
    const [host, port] = prometheus.alerting.alertmanagers[0]!.static_configs[0]!.targets[0]!.split(':');
    expect(compose.services[host!]?.image).toMatch(/^prom\/alertmanager:/);
    expect(port).toBe('9093');
  });

  it('reserves no GPU in the base file, so it comes up on a machine without one', () => {
    for (const [name, service] of Object.entries(compose.services) as Array<[string, ComposeService]>) {
      expect(service.deploy?.resources?.reservations?.devices, name).toBeUndefined();
    }
  });

  it('runs every service through the compiled entry point of the image (node, no tsx)', () => {
    const instructions = dockerfile();
    const stages = instructions.filter((i) => i.op === 'FROM');
    expect(stages.length).toBeGreaterThan(1);
    const runtime = instructions.slice(instructions.lastIndexOf(stages.at(-1)!));
    const entrypoint = JSON.parse(runtime.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
    expect(entrypoint).toEqual(['node', '/app/bin/driftline.js']);
    expect(instructions.map((i) => i.args).join('\n')).not.toMatch(/tsx|--conditions|\.ts\b/);
    // /app is the CLI package as deployed from the build stage: its bin is that entry point.
    const cliPackage = JSON.parse(readFileSync(join(docker, '../services/cli/package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(cliPackage.bin.driftline).toBe('./bin/driftline.js');
    expect(instructions.some((i) => i.op === 'RUN' && /pnpm build/.test(i.args) && /deploy .*\/out/.test(i.args))).toBe(
      true,
    );
    expect(runtime.some((i) => i.op === 'COPY' && i.args === '--from=build /out /app')).toBe(true);
    for (const name of driftlineServices) {
      const service = compose.services[name] as ComposeService;
      expect(service.entrypoint, name).toBeUndefined();
      expect(service.command, name).toEqual(['run', name]);
    }
  });

  it('builds the trainer venv into the image and runs as a user that can write its state', () => {
    const instructions = dockerfile();
    const setup = instructions.find((i) => i.op === 'RUN' && i.args.includes('setup-venv.sh'));
    expect(setup?.args).toContain('DRIFTLINE_TRAINER_VENV=/opt/driftline/pyenv-trainer');
    const env = instructions
      .filter((i) => i.op === 'ENV')
      .map((i) => i.args)
      .join(' ');
    expect(env).toContain('DRIFTLINE_TRAINER_PYTHON=/opt/driftline/pyenv-trainer/bin/python');
    expect(env).toContain('DRIFTLINE_TRAINER_ARTIFACT_DIR=/var/lib/driftline/models');
    expect(instructions.some((i) => i.op === 'RUN' && i.args.includes('chown -R node:node /var/lib/driftline'))).toBe(
      true,
    );
    expect(instructions.filter((i) => i.op === 'USER').at(-1)?.args).toBe('node');
    expect(compose.services.trainer?.volumes).toContain('models:/var/lib/driftline/models');
  });

  it('compose.gpu.yml gives the trainer a CUDA image and reserves the NVIDIA GPU', () => {
    expect(Object.keys(gpuOverride.services)).toEqual(['trainer']);
    const trainer = gpuOverride.services.trainer!;
    expect(trainer.deploy?.resources?.reservations?.devices).toEqual([
      { driver: 'nvidia', count: 'all', capabilities: ['gpu'] },
    ]);
    expect(trainer.build?.args?.TRAINER_FLAVOUR).toBe('gpu');
    expect(existsSync(resolve(docker, trainer.build!.context, trainer.build!.dockerfile))).toBe(true);
    expect(trainer.image).not.toBe('driftline:latest');
  });

  it.runIf(composePlugin)('merges with the GPU override in `docker compose config`', () => {
    execFileSync('docker', [
      'compose',
      '-f',
      join(docker, 'compose.yml'),
      '-f',
      join(docker, 'compose.gpu.yml'),
      'config',
      '-q',
    ]);
  });
});
