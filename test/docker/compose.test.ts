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
    }
  >;
};
const driftlineServices = [
  'feature-materializer',
  'feature-api',
  'drift-monitor',
  'label-joiner',
  'retrain-trigger',
  'trainer',
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
});
