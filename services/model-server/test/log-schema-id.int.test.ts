import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { SchemaRegistryCodec } from '@driftline/codec';
import { type Logger, silentLogger } from '@driftline/core';
import { ensureTopics, topicOffsets } from '@driftline/kafka';
import { contracts, deadLetterTopic, type PredictionEvent } from '@driftline/schemas';
import { kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startThreadLog } from '../src/log-thread.js';
import { loggedPrediction as prediction } from './fixtures.js';

const stack = inject('stack');

/** The thread's schema id confirmation interval in this test (60 s in production). */
const RECHECK_MS = 500;

/**
 * A loopback proxy to the stack's real registry that gives the subject's schema content of its own
 * (a `doc` naming the topic), as `predictions.v1-value`'s is in a deployment. The stack's registry
 * numbers schemas by content, and every test's predictions subject holds the same content: deleting
 * this one alone would leave its id known. Counts the registrations.
 */
async function ownContentRegistry(
  topic: string,
): Promise<{ url: string; registrations(): number; close(): Promise<void> }> {
  let registrations = 0;
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      void (async () => {
        let body = parts.length > 0 ? Buffer.concat(parts).toString() : undefined;
        if (req.method === 'POST' && /^\/subjects\/[^/]+\/versions$/.test(req.url ?? '') && body !== undefined) {
          registrations++;
          const { schema } = JSON.parse(body) as { schema: string };
          body = JSON.stringify({
            schema: JSON.stringify({ ...JSON.parse(schema), doc: `log schema id test ${topic}` }),
          });
        }
        const answer = await fetch(`${stack.schemaRegistryUrl}${req.url ?? ''}`, {
          method: req.method ?? 'GET',
          headers: Object.fromEntries(
            ['accept', 'content-type', 'authorization'].flatMap((h) => {
              const value = req.headers[h];
              return typeof value === 'string' ? [[h, value]] : [];
            }),
          ),
          ...(body === undefined ? {} : { body }),
        });
        res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
        res.end(await answer.text());
      })().catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    registrations: () => registrations,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Decodes as a consumer that never saw the record's id does (no cached answer for it). */
const decodeFresh = (topic: string, value: Buffer | null): Promise<PredictionEvent> =>
  new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic).decode(value);

const schemaIdOf = (value: Buffer | null): number => value!.readUInt32BE(1);

/** Warning lines, for the expectation on the id change. */
function warningsInto(lines: Array<{ obj: object; msg: string | undefined }>): Logger {
  return { ...silentLogger, warn: (obj, msg) => lines.push({ obj, msg }), child: () => warningsInto(lines) };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("the prediction log thread's schema id (real Kafka and registry)", () => {
  it('after its subject is deleted for good, logged predictions decode again once the interval has passed (found by a review: the id was kept for the thread life)', async () => {
    const topic = `${uniqueName('logschemaid')}.predictions.v1`;
    const subject = `${topic}-value`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [
      { topic, partitions: 1 },
      { topic: deadLetterTopic(topic), partitions: 1 },
    ]);
    const registry = await ownContentRegistry(topic);
    cleanups.push(registry.close);
    const warnings: Array<{ obj: object; msg: string | undefined }> = [];
    const log = await startThreadLog(
      {
        kafka: { brokers: stack.kafkaBrokers, clientId: 'log-schema-id-test', ssl: false },
        registry: { url: registry.url },
        topic,
        schemaIdRecheckMs: RECHECK_MS,
      },
      { maxBuffered: 50_000, maxWaitMs: 0, flushIntervalMs: 20, maxBatch: 500 },
      warningsInto(warnings),
    );
    cleanups.push(() => log.close());
    const startedAt = Date.now();

    // Several sends' worth: a registration per record or per send would show in the count below.
    const BURST = 2_000;
    for (let i = 0; i < BURST; i += 500) await log.append(Array.from({ length: 500 }, (_, j) => prediction(i + j)));
    expect(await log.drain(30_000)).toBe(0);
    const [first] = await readTopic(kafka, topic, 1, 30_000);
    const oldId = schemaIdOf(first!.value);
    expect(await decodeFresh(topic, first!.value)).toEqual(prediction(0));

    for (const query of ['', '?permanent=true']) {
      const res = await fetch(`${stack.schemaRegistryUrl}/subjects/${encodeURIComponent(subject)}${query}`, {
        method: 'DELETE',
      });
      await res.body?.cancel();
      expect(res.status, `DELETE ${subject}${query}`).toBe(200);
    }
    await expect(decodeFresh(topic, first!.value)).rejects.toMatchObject({ code: 'DECODE_FAILED' });

    // Requests keep logging (every 20 ms) while the thread confirms its id in the background.
    let next = BURST;
    let logging = true;
    const traffic = (async () => {
      while (logging) {
        await log.append([prediction(next++)]);
        await sleep(20);
      }
    })();
    try {
      // Until the newest record names another id, and a consumer reads it. On the old code, every
      // record named the deleted id until the model server restarted.
      const readable = await readTopic(
        kafka,
        topic,
        async (records) => {
          const value = records.at(-1)!.value;
          return (
            schemaIdOf(value) !== oldId &&
            (await decodeFresh(topic, value).then(
              () => true,
              () => false,
            ))
          );
        },
        20_000,
      ).then(
        () => true,
        () => false,
      );
      expect(readable, 'within 20 s of the deletion, a logged prediction consumers can read').toBe(true);
    } finally {
      logging = false;
      await traffic;
    }
    expect(await log.drain(30_000)).toBe(0);
    const elapsedMs = Date.now() - startedAt;

    const total = (await topicOffsets(kafka, topic)).reduce((a, o) => a + Number(o.high), 0);
    expect(total).toBe(next);
    const records = await readTopic(kafka, topic, total, 30_000);
    const ids = records.map((r) => schemaIdOf(r.value));
    // One switch, for good: the records before it name the deleted id (the documented bound),
    // every one after it names the new id and decodes to what was logged.
    const switchedAt = ids.findIndex((id) => id !== oldId);
    expect(switchedAt).toBeGreaterThanOrEqual(BURST);
    const newId = ids[switchedAt]!;
    expect(ids.slice(switchedAt).every((id) => id === newId)).toBe(true);
    for (const r of records.slice(switchedAt)) {
      const event = await decodeFresh(topic, r.value);
      expect(event).toEqual(prediction(Number(event.prediction_id.slice(2))));
    }
    // Confirmed at most once per interval, never per record.
    expect(registry.registrations()).toBeLessThanOrEqual(2 + Math.floor(elapsedMs / RECHECK_MS));
    expect(warnings.filter((w) => /no longer has schema id/.test(w.msg ?? ''))).toEqual([
      { obj: expect.objectContaining({ subject, previousSchemaId: oldId, schemaId: newId }), msg: expect.any(String) },
    ]);
  });
});
