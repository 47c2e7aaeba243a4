import { silentLogger } from '@driftline/core';
import { type createKafkaClient, ensureTopics } from '@driftline/kafka';
import { startLogThread, THREAD_LOG_BATCH } from '@driftline/model-server/bench';
import type { PredictionEvent } from '@driftline/schemas';

const BATCH = THREAD_LOG_BATCH;
const BATCHES = Math.ceil(100_000 / BATCH);

/** A prediction record as the model server logs it for the bench's model (10 float features). */
const predictionOf = (i: number, now: number): PredictionEvent => ({
  prediction_id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  model: 'bench',
  model_version: 'v1',
  entity_id: `ent-${i % 10_000}`,
  event_time: now,
  features: Object.fromEntries(Array.from({ length: 10 }, (_, j) => [`f${j}`, ((i * 31 + j * 17) % 1000) / 250 - 2])),
  prediction: (i % 1000) / 1000,
  predicted_class: null,
  role: 'production',
  scores: { v1: (i % 1000) / 1000 },
});

/**
 * The prediction log's ceiling: records per second its worker thread gets acknowledged by Kafka
 * (acks=all), batches of THREAD_LOG_BATCH sent one after another as the log does under a backlog,
 * and the process CPU per record (serving thread's hand-off included). Records are built before the
 * clock starts. Median of `repeats` rounds of 100,000 records.
 */
export async function benchLogThroughput(
  kafka: ReturnType<typeof createKafkaClient>,
  config: { kafka: { brokers: readonly string[]; clientId: string; ssl: false }; schemaRegistryUrl: string },
  topic: string,
  repeats: number,
  log: (line: string) => void,
): Promise<{ recordsPerS: number; cpuUsPerRecord: number }> {
  await ensureTopics(kafka, [{ topic, partitions: 1 }]);
  const thread = await startLogThread(
    { kafka: config.kafka, registry: { url: config.schemaRegistryUrl }, topic },
    silentLogger,
  );
  const rates: number[] = [];
  const cpus: number[] = [];
  try {
    const now = Date.now();
    await thread.publish([predictionOf(0, now)]); // registration and connection outside the clock
    for (let r = 0; r < repeats; r++) {
      const batches = Array.from({ length: BATCHES }, (_, b) =>
        Array.from({ length: BATCH }, (_, i) => predictionOf(b * BATCH + i, now)),
      );
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (const batch of batches) await thread.publish(batch);
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      rates.push((BATCH * BATCHES) / seconds);
      cpus.push((cpu.user + cpu.system) / (BATCH * BATCHES));
      log(
        `prediction log run ${r + 1}: ${Math.round(rates.at(-1)!)} records/s, ${cpus.at(-1)!.toFixed(1)} µs CPU per record`,
      );
    }
  } finally {
    await thread.close();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  return { recordsPerS: Math.round(median(rates)), cpuUsPerRecord: Math.round(median(cpus) * 10) / 10 };
}
