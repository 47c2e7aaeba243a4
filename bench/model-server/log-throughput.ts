import { silentLogger } from '@driftline/core';
import { type createKafkaClient, ensureTopics } from '@driftline/kafka';
import { DEFAULT_LOG_BOUNDS, startThreadLog, THREAD_LOG_BATCH } from '@driftline/model-server/bench';
import type { PredictionEvent } from '@driftline/schemas';
import { median } from '../stats.js';

/** Records per round, appended 100 at a time (one batch request's worth). */
const RECORDS = 100_000;
const REQUEST = 100;

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
 * The prediction log's ceiling: records per second the log on its worker thread (the service's
 * default) gets acknowledged by Kafka (acks=all) when appended as fast as its bound admits, 100
 * per append as batch requests do, and the process CPU per record (the serving thread's hand-off
 * included). Records are built before the clock starts. Median of `repeats` rounds of 100,000.
 */
export async function benchLogThroughput(
  kafka: ReturnType<typeof createKafkaClient>,
  config: { kafka: { brokers: readonly string[]; clientId: string; ssl: false }; schemaRegistryUrl: string },
  topic: string,
  repeats: number,
  log: (line: string) => void,
): Promise<{ recordsPerS: number; cpuUsPerRecord: number }> {
  await ensureTopics(kafka, [{ topic, partitions: 1 }]);
  // A long wait: the rounds measure how fast the log takes records, never its refusals.
  const bounds = { ...DEFAULT_LOG_BOUNDS, maxBatch: THREAD_LOG_BATCH, maxWaitMs: 60_000 };
  const predictions = await startThreadLog(
    { kafka: config.kafka, registry: { url: config.schemaRegistryUrl }, topic },
    bounds,
    silentLogger,
  );
  const rates: number[] = [];
  const cpus: number[] = [];
  try {
    const now = Date.now();
    await predictions.append([predictionOf(0, now)]); // registration and connection outside the clock
    await predictions.drain(30_000);
    for (let r = 0; r < repeats; r++) {
      const requests = Array.from({ length: RECORDS / REQUEST }, (_, q) =>
        Array.from({ length: REQUEST }, (_, i) => predictionOf(q * REQUEST + i, now)),
      );
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (const records of requests) {
        await predictions.append(records); // waits for room under a backlog, as requests do
        await new Promise((r) => setImmediate(r)); // one request per event-loop turn, as served
      }
      const left = await predictions.drain(60_000);
      if (left > 0) throw new Error(`prediction log: ${left} records not acknowledged within 60 s`);
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      rates.push(RECORDS / seconds);
      cpus.push((cpu.user + cpu.system) / RECORDS);
      log(
        `prediction log run ${r + 1}: ${Math.round(rates.at(-1)!)} records/s, ${cpus.at(-1)!.toFixed(1)} µs CPU per record`,
      );
    }
  } finally {
    await predictions.close();
  }
  return { recordsPerS: Math.round(median(rates)), cpuUsPerRecord: Math.round(median(cpus) * 10) / 10 };
}
