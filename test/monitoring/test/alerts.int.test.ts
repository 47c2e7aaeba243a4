import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { silentLogger } from '@driftline/core';
import { featureMaterializer } from '@driftline/feature-materializer';
import { committedOffsets, ensureTopics } from '@driftline/kafka';
import { createDriftlineProducer, type DriftlineProducer } from '@driftline/sdk';
import { type Runner, startRunner } from '@driftline/service';
import { type MonitoringEndpoints, monitoringDown, monitoringUp, writeScrapeTargets } from '@driftline/stack';
import { eventually, freePort, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { promQuery, startWebhookReceiver, type WebhookAlert, type WebhookReceiver, withShortFor } from './helpers.js';

/**
 * The shipped pipeline-health rules (docker/prometheus/rules), only their `for:` shortened to
 * seconds, evaluated by a private Prometheus every second over a real feature-materializer's
 * /metrics; Alertmanager sends what fires to a local webhook receiver.
 */
const stack = inject('stack');
const rulesDir = resolve(import.meta.dirname, '../../../docker/prometheus/rules');
const work = mkdtempSync(join(tmpdir(), 'driftline-monitoring-'));
const VIEWS = `
views:
  - name: profile
    entity: user_id
    ttl: 1d
    features:
      age: double
`;

/** A private redis-server (never the shared one): the test kills it to make the sink fail. */
function startRedis(port: number): { child: ChildProcess; exit: Promise<unknown> } {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', work],
    { stdio: 'ignore' },
  );
  return { child, exit: new Promise((r) => child.once('exit', r)) };
}

const firing = (alerts: readonly WebhookAlert[], name: string) =>
  alerts.filter((a) => a.status === 'firing' && a.labels.alertname === name);

describe('pipeline-health alerts reach a webhook through Alertmanager', () => {
  let receiver: WebhookReceiver;
  let monitoring: MonitoringEndpoints;
  let redis: ReturnType<typeof startRedis> | undefined;
  const runners: Runner[] = [];
  const producers = new Map<string, DriftlineProducer>();
  const kafka = kafkaFor(stack.kafkaBrokers);
  const views = join(work, 'views.yaml');
  const committed = async (group: string, topic: string) =>
    [...(await committedOffsets(kafka, group, topic)).values()].reduce((a, b) => a + (b > 0n ? b : 0n), 0n);
  const publish = async (prefix: string, from: number, count: number) => {
    let sdk = producers.get(prefix);
    if (sdk === undefined) {
      sdk = await createDriftlineProducer({
        kafka: { brokers: stack.kafkaBrokers, clientId: 'monitoring-test', ssl: false },
        registry: { url: stack.schemaRegistryUrl },
        topicPrefix: prefix,
      });
      producers.set(prefix, sdk);
    }
    const now = Date.now();
    for (let at = 0; at < count; at += 1_000) {
      await sdk.publishFeatures(
        Array.from({ length: Math.min(1_000, count - at) }, (_, i) => ({
          view: 'profile',
          entity_id: `user:${(from + at + i) % 20}`,
          event_time: now - 60_000 + at + i,
          features: { age: from + at + i },
        })),
      );
    }
    await sdk.flush();
  };
  /** A feature-materializer on its own topics and group, scraped by Prometheus as `<name>`. */
  const startMaterializer = async (name: string, prefix: string, group: string, redisUrl: string) => {
    const runner = await startRunner({
      services: [featureMaterializer as never],
      logger: silentLogger,
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_TOPIC_PREFIX: prefix,
        DRIFTLINE_TOPIC_PARTITIONS: '1',
        DRIFTLINE_FEATURE_VIEWS: views,
        DRIFTLINE_REDIS_URL: redisUrl,
        DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('fk'),
        DRIFTLINE_MATERIALIZER_GROUP: group,
        DRIFTLINE_MATERIALIZER_BACKOFF_MAX_MS: '500',
      },
    });
    runners.push(runner);
    const instance = `127.0.0.1:${runner.httpPort}`;
    writeScrapeTargets(monitoring.targetsDir, name, [instance]);
    await eventually(
      async () => {
        const [sample] = await promQuery(monitoring.prometheusUrl, `up{job="driftline",instance="${instance}"}`);
        return sample?.value[1] === '1' ? true : undefined;
      },
      30_000,
      250,
    );
    return { runner, instance };
  };

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    const rules = join(work, 'rules');
    mkdirSync(rules);
    for (const f of readdirSync(rulesDir).filter((n) => n.endsWith('.yml'))) {
      writeFileSync(join(rules, f), withShortFor(readFileSync(join(rulesDir, f), 'utf8'), '3s'));
    }
    ({ endpoints: monitoring } = await monitoringUp({
      dir: join(work, 'monitoring'),
      ruleFiles: [join(rules, '*.yml')],
      // Also the scrape timeout: at a load average of ~25 a healthy service's /metrics took over 1 s
      // and Prometheus counted it down (DriftlineServiceDown fired in the first case).
      scrapeInterval: '2s',
      evaluationInterval: '1s',
      groupWait: '1s',
      groupInterval: '1s',
      repeatInterval: '1h',
      webhookUrl: receiver.url,
      targets: [], // only the services this test starts
      log: (line) => process.stderr.write(`[monitoring] ${line}\n`),
    }));
    writeFileSync(views, VIEWS);
  });

  afterAll(async () => {
    for (const sdk of producers.values()) await sdk.close().catch(() => {});
    for (const runner of runners) await runner.stop().catch(() => {});
    redis?.child.kill('SIGKILL');
    await redis?.exit;
    await monitoringDown({ dir: join(work, 'monitoring') });
    await receiver?.close();
    rmSync(work, { recursive: true, force: true });
  });

  let healthy: { runner: Runner; instance: string };

  it('Prometheus discovers a service from the targets folder, scrapes /metrics, and nothing fires while it is healthy', async () => {
    const redisPort = await freePort();
    redis = startRedis(redisPort);
    const prefix = `${uniqueName('healthy')}.`;
    const setting = uniqueName('materializer');
    const group = `${prefix}${setting}`; // the service puts the topic prefix before its group setting
    healthy = await startMaterializer('healthy', prefix, setting, `redis://127.0.0.1:${redisPort}`);
    await publish(prefix, 0, 200);
    await eventually(async () => ((await committed(group, `${prefix}features.v1`)) >= 200n ? true : undefined));
    const lag = await eventually(async () => {
      const samples = await promQuery(monitoring.prometheusUrl, `driftline_consumer_lag{group="${group}"}`);
      return samples.length > 0 ? samples : undefined;
    });
    expect(lag[0]!.metric).toMatchObject({ service: 'feature-materializer', instance: healthy.instance });
    await new Promise((r) => setTimeout(r, 5_000)); // longer than the shortened `for` plus Alertmanager's wait
    expect(receiver.alerts).toEqual([]);
  });

  it('a stuck consumer (its sink is down; 10,500 records of lag that do not move) fires DriftlineConsumerLagHigh and DriftlineSinkBackingOff at the webhook', async () => {
    const prefix = `${uniqueName('stuck')}.`;
    const setting = uniqueName('materializer');
    const group = `${prefix}${setting}`;
    const topic = `${prefix}features.v1`;
    // The backlog is in Kafka before the consumer's first fetch, so the lag it reports is all of it
    // (a partition that fails keeps retrying the batch it fetched, with that fetch's high watermark).
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    await publish(prefix, 0, 10_500);
    const deadRedis = `redis://127.0.0.1:${await freePort()}`; // nothing listens there
    await startMaterializer('stuck', prefix, setting, deadRedis);
    const [lagHigh] = await eventually(
      async () => {
        const found = firing(receiver.alerts, 'DriftlineConsumerLagHigh');
        return found.length > 0 ? found : undefined;
      },
      60_000,
      250,
    );
    expect(lagHigh!.labels).toMatchObject({ severity: 'warning', service: 'feature-materializer', group, topic });
    expect(lagHigh!.annotations.summary).toBe(`${group} is 10500 records behind on ${topic}`);
    const [backingOff] = await eventually(async () => {
      const found = firing(receiver.alerts, 'DriftlineSinkBackingOff');
      return found.length > 0 ? found : undefined;
    });
    expect(backingOff!.labels).toMatchObject({ severity: 'warning', group, topic, partition: '0' });
    expect(await committed(group, topic)).toBe(0n); // stuck indeed: nothing committed past the dead sink
    // The healthy service is still healthy: no alert names its group or instance.
    expect(receiver.alerts.filter((a) => a.labels.instance === healthy.instance)).toEqual([]);
  });

  it('a service that stops answering fires DriftlineServiceDown at the webhook', async () => {
    await healthy.runner.stop();
    const [down] = await eventually(
      async () => {
        const found = firing(receiver.alerts, 'DriftlineServiceDown');
        return found.length > 0 ? found : undefined;
      },
      60_000,
      250,
    );
    expect(down!.labels).toMatchObject({
      alertname: 'DriftlineServiceDown',
      job: 'driftline',
      instance: healthy.instance,
    });
    expect(down!.annotations.summary).toBe(`driftline target ${healthy.instance} is down`);
    expect(firing(receiver.alerts, 'DriftlineServiceDown')).toHaveLength(1); // only the stopped one
  });
});
