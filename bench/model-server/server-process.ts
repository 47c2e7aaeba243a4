// The model server of the bench in a process of its own, as `driftline run model-server` deploys
// it: the client's work (building and parsing bodies) never runs on the serving thread. The parent
// (bench/model-server/index.ts) forks this file with the setup in BENCH_MODEL_SERVER, receives
// `{ port }` once the model is served, and sends 'stop': the child drains the prediction log to
// Kafka, closes, and answers `{ stopped: <records left> }` before it exits.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { silentLogger } from '@driftline/core';
import { parseFeatureViewsText } from '@driftline/features';
import { createKafkaClient, createProducer, createPublisher } from '@driftline/kafka';
import { artifactLoader, type PredictionLogTarget, startModelServer } from '@driftline/model-server/bench';
import { createMetricsRegistry } from '@driftline/observability';
import { createRedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { contracts, type PredictionEvent } from '@driftline/schemas';

/** What the parent passes (JSON in BENCH_MODEL_SERVER). */
export interface ServerProcessSetup {
  readonly kafkaBrokers: readonly string[];
  readonly schemaRegistryUrl: string;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly viewsYaml: string;
  readonly artifactDir: string;
  readonly topic: string;
  readonly model: string;
  readonly version: string;
  /**
   * 'none': predictions are not logged at all — an analysis figure only (the service never runs
   * so): the serving path alone, the work MLServer does.
   */
  readonly log?: 'none';
}

/**
 * BENCH_SERVER_HEAP_PROF=<dir>: a sampling profile of everything the serving process allocates,
 * garbage included (what drives its scavenges), written at stop as <dir>/<pid>.heapprofile (open
 * it in Chrome DevTools' Memory tab). Node's --heap-prof keeps only what is still live at the end.
 */
async function startHeapProfile(): Promise<(() => Promise<void>) | undefined> {
  const dir = process.env.BENCH_SERVER_HEAP_PROF;
  if (dir === undefined || dir === '') return undefined;
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return async () => {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(join(dir, `${process.pid}.heapprofile`), JSON.stringify(profile));
  };
}

async function main(): Promise<void> {
  const stopHeapProfile = await startHeapProfile();
  const setup = JSON.parse(process.env.BENCH_MODEL_SERVER ?? '') as ServerProcessSetup;
  const reader = createRedisOnlineStore(
    { url: setup.redisUrl, tls: false },
    { use: 'online-read', keyPrefix: setup.keyPrefix },
  );
  await waitReady(reader.client);
  const kafkaConfig = { brokers: setup.kafkaBrokers, clientId: 'bench-model-server', ssl: false };
  // As the service does by default (DRIFTLINE_MODEL_SERVER_LOG_THREAD): the prediction log on a
  // worker thread; BENCH_LOG_THREAD=0 sends from the serving thread, for comparison, through a
  // producer of the serving process (opened only then).
  const producer =
    process.env.BENCH_LOG_THREAD === '0'
      ? await createProducer(createKafkaClient(kafkaConfig, silentLogger))
      : undefined;
  const refuse = async () => {
    throw new Error('bench: no prediction record may be refused');
  };
  const log = ((): PredictionLogTarget => {
    if (setup.log === 'none') return { publish: async () => {}, deadLetter: refuse };
    if (producer === undefined) {
      return { thread: { kafka: kafkaConfig, registry: { url: setup.schemaRegistryUrl }, topic: setup.topic } };
    }
    const codec = new SchemaRegistryCodec({ url: setup.schemaRegistryUrl }).forTopic(contracts.prediction, setup.topic);
    const publisher = createPublisher<PredictionEvent>({
      topic: setup.topic,
      producer,
      encode: (e) => codec.encode(e),
      key: contracts.prediction.key,
    });
    return { publish: (e: readonly PredictionEvent[]) => publisher.publish(e), deadLetter: refuse };
  })();
  const server = await startModelServer({
    store: reader,
    views: parseFeatureViewsText(setup.viewsYaml),
    load: artifactLoader(setup.artifactDir),
    log,
    registry: createMetricsRegistry({ service: 'bench', defaultMetrics: false }),
    logger: silentLogger,
  });
  await server.table.promote(setup.model, setup.version);
  process.on('message', (message) => {
    if (message !== 'stop') return;
    void (async () => {
      const left = await server.log.drain(30_000);
      await stopHeapProfile?.();
      await server.close();
      await producer?.disconnect();
      await reader.close();
      process.send?.({ stopped: left }, () => process.exit(0));
    })();
  });
  process.send?.({ port: server.port });
}

main().catch((error: unknown) => {
  process.stderr.write(`bench model server: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
