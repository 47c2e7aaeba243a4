// Helpers of the model-server's integration tests on the real stack: models.v1 events as the
// controller (or the trainer) publishes them, and what predictions.v1 holds.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SchemaRegistryCodec } from '@driftline/codec';
import type { Logger } from '@driftline/core';
import { createProducer, ensureTopics, topicOffsets } from '@driftline/kafka';
import { contracts, type ModelEvent, type PredictionEvent } from '@driftline/schemas';
import { type Runner, type ServiceDefinition, startRunner } from '@driftline/service';
import type { StackEndpoints } from '@driftline/stack';
import { eventually, kafkaFor, readTopic, serviceEnv } from '@driftline/test-support';
import { modelServer } from '../src/index.js';
import { VIEWS_YAML } from './fixtures.js';

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

/**
 * The model server in a process of its own (as `driftline run model-server` deploys it), for a
 * deployment `prefix` with its artifacts in `dir`, serving on `port`; `vars` adds or overrides
 * variables. Resolves `exit` with the signal or code it ended with.
 */
export function spawnServer(
  stack: StackEndpoints,
  dir: string,
  prefix: string,
  port: number,
  vars: Record<string, string> = {},
): { child: ChildProcess; exit: Promise<NodeJS.Signals | number | null> } {
  const env = serviceEnv(stack, { ...serverVars(dir, prefix, port, '3'), ...vars });
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=source', 'services/model-server/test/fixtures/server-process.ts'],
    { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exit = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code)),
  );
  return { child, exit };
}

/** The model server's variables for a deployment `prefix` (its views file written into `dir`). */
function serverVars(dir: string, prefix: string, port: number, partitions: string): Record<string, string> {
  const viewsFile = join(dir, 'views.yaml');
  writeFileSync(viewsFile, VIEWS_YAML);
  return {
    DRIFTLINE_TOPIC_PREFIX: prefix,
    DRIFTLINE_TOPIC_PARTITIONS: partitions,
    DRIFTLINE_HTTP_PORT: '0',
    DRIFTLINE_LOG_LEVEL: 'warn',
    DRIFTLINE_FEATURE_VIEWS: viewsFile,
    DRIFTLINE_MODEL_SERVER_PORT: String(port),
    DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR: dir,
  };
}

/**
 * The model server in this process (as `spawnServer` deploys it, one partition per topic); `vars`
 * adds or overrides; `logger` replaces the runner's JSON lines on stdout.
 */
export function startServer(
  stack: StackEndpoints,
  dir: string,
  prefix: string,
  port: number,
  vars: Record<string, string> = {},
  logger?: Logger,
): Promise<Runner> {
  return startRunner({
    services: [modelServer as unknown as ServiceDefinition<never, unknown>],
    env: serviceEnv(stack, { ...serverVars(dir, prefix, port, '1'), ...vars }),
    ...(logger === undefined ? {} : { logger }),
  });
}

/** The topics of one deployment (`prefix`), its artifacts in `dir` (`<dir>/<model>/<version>/model.json`). */
export function deploymentTopics(stack: StackEndpoints, prefix: string, dir: string) {
  const kafka = kafkaFor(stack.kafkaBrokers);
  const registry = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
  const predictions = registry.forTopic(contracts.prediction, `${prefix}predictions.v1`);

  /** Publishes one models.v1 event of `model`. */
  async function stage(
    model: string,
    kind: ModelEvent['kind'],
    version: string,
    extra: Partial<ModelEvent> = {},
  ): Promise<void> {
    const topic = `${prefix}models.v1`;
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    const codec = registry.forTopic(contracts.model, topic);
    const producer = await createProducer(kafka);
    const event: ModelEvent = {
      model,
      version,
      kind,
      event_time: Date.now(),
      request_id: null,
      metrics: {},
      artifact_uri: `file://${join(dir, model, version, 'model.json')}`,
      reference_uri: null,
      decided_by: 'operator:test',
      ...extra,
    };
    await producer.send(topic, [{ key: model, value: await codec.encode(event) }]);
    await producer.disconnect();
  }

  /** Every record predictions.v1 holds now, decoded. */
  async function predictionLog(): Promise<PredictionEvent[]> {
    const topic = `${prefix}predictions.v1`;
    const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
    const events: PredictionEvent[] = [];
    for (const r of await readTopic(kafka, topic, total, 30_000)) events.push(await predictions.decode(r.value!));
    return events;
  }

  /** The records whose prediction id starts with one of `ids`, once there are at least `n`. */
  function logged(ids: readonly string[], n: number): Promise<PredictionEvent[]> {
    return eventually(
      async () => {
        const events = (await predictionLog()).filter((e) => ids.some((id) => e.prediction_id.startsWith(id)));
        return events.length >= n ? events : undefined;
      },
      30_000,
      200,
    );
  }

  return { stage, logged, predictionLog };
}
