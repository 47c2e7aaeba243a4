// A retrain request the worker fails on every run is dead-lettered after MAX_WORKER_ATTEMPTS runs,
// on the real stack. Found by a review: the give-up was INTERNAL, which the consumer loop takes for
// a fault of the processor when the record fails alone in its batch, so it held the record (60 s)
// instead; the retry found no count and ran the worker three times again, each retriable failure
// restarting the hold: 25 worker kills in 2.5 minutes, nothing on retrain.v1.dlq, healthz 200.
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createProducer, deleteTopics, ensureTopics, setGroupOffsets, topicOffsets } from '@driftline/kafka';
import { contracts } from '@driftline/schemas';
import type { Runner } from '@driftline/service';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { type ClickHouse, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { MAX_WORKER_ATTEMPTS } from '../src/trainer.js';
import { dlqRecordCount, insertLabeledRows, retrainRequestOf, startTrainerOnStack } from './on-stack.js';

const stack = inject('stack');
const scratch = mkdtempSync(join(tmpdir(), 'trainer-give-up-'));
const chPath = mkdtempSync(join(scratch, 'ch-'));
const prefix = `${uniqueName('give-up')}.`;
const database = uniqueName('give_up').replace('-', '_');
const retrainTopic = `${prefix}retrain.v1`;
const group = `${prefix}driftline-trainer`;
/** Kept across the restarts below: the give-up records live in the versions' directories. */
const artifactDir = mkdtempSync(join(scratch, 'art-'));

/** Every training run it is given fails (exit 1, as a worker killed or crashing); the start-up import check passes. */
const runsFile = join(scratch, 'runs');
const python = join(scratch, 'python');
writeFileSync(
  python,
  `#!/bin/sh\nif [ "$1" = "-c" ]; then exit 0; fi\nprintf x >> "${runsFile}"\necho "MemoryError: stand-in worker, failing every run" >&2\nexit 1\n`,
);
chmodSync(python, 0o755);
const runs = () => (existsSync(runsFile) ? readFileSync(runsFile, 'utf8').length : 0);

const insertLabeled = (ch: ClickHouse, model: string, from: number, to: number, n: number) =>
  insertLabeledRows(ch, model, from, to, n, (i) => ({ features: { x: i % 7, noise: (i * 37) % 11 }, label: i % 2 }));

describe('a request the worker fails on every run is dead-lettered once, after MAX_WORKER_ATTEMPTS runs (found by a review)', () => {
  const kafka = kafkaFor(stack.kafkaBrokers);
  let ch: ClickHouse;
  let runner: Runner;
  const dlqCount = () => dlqRecordCount(kafka, retrainTopic);

  /** Starts the trainer (`over`: settings changed since the first start). */
  const start = async (over: Record<string, string> = {}) => {
    runner = await startTrainerOnStack(
      stack,
      { prefix, partitions: 1, database, chPath, artifactDir },
      {
        DRIFTLINE_TRAINER_PYTHON: python,
        DRIFTLINE_TRAINER_MIN_ROWS: '100',
        DRIFTLINE_TRAINER_LABEL_WAIT: '0',
        ...over,
      },
    );
  };
  /** Stops the trainer and resets its group to the start of the topic, as an operator reprocessing it does. */
  const stopAndReset = async (between?: () => Promise<void>) => {
    await runner.stop();
    await between?.();
    // Kafka refuses while the group still has a member (leaving takes a moment).
    await eventually(
      () =>
        setGroupOffsets(kafka, group, retrainTopic, new Map([[0, 0n]])).then(
          () => true,
          () => undefined,
        ),
      30_000,
      250,
    );
  };

  beforeAll(async () => {
    ch = await createClickHouse({ mode: 'embedded', path: chPath, database });
    await migrate(ch, migrations);
    await start();
  });

  afterAll(async () => {
    await runner?.stop();
  });

  /** The data_to of the request given up alone: sent again, it is the same request (same version directory). */
  let aloneDataTo = 0;
  const publish = async (models: readonly string[], dataTo: number) => {
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.retrain, retrainTopic);
    const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
    const messages = await Promise.all(
      models.map(async (model) => ({ key: model, value: await codec.encode(retrainRequestOf(model, dataTo)) })),
    );
    await producer.send(retrainTopic, messages);
    await producer.disconnect();
  };
  const reasonOf = (model: string) =>
    new RegExp(
      `^retrain ${model}-request of ${model}: trainer worker failed ${MAX_WORKER_ATTEMPTS} times on this request; given up .*The last failure: trainer worker exited with 1 \\(retrain ${model}-request of ${model}\\): MemoryError: stand-in worker, failing every run$`,
      's',
    );

  it("alone in its batch (the review's case): dead-lettered once, naming the attempts and the last failure, within seconds; 3 runs", async () => {
    const dataTo = Date.now();
    aloneDataTo = dataTo;
    await insertLabeled(ch, 'alone', dataTo - 10 * 60_000, dataTo, 300);
    await publish(['alone'], dataTo);
    // Within 30 s: less than the loop's 60 s processor-fault hold, which the old code never got out of.
    await eventually(async () => ((await dlqCount()) >= 1 ? true : undefined), 30_000, 200);
    const [givenUp] = await readTopic(kafka, `${retrainTopic}.dlq`, 1);
    expect(String(givenUp?.headers['driftline.dlq.code'])).toBe('VALIDATION_FAILED');
    expect(String(givenUp?.headers['driftline.dlq.reason'])).toMatch(reasonOf('alone'));
    expect(runs()).toBe(MAX_WORKER_ATTEMPTS);
    // Committed past: nothing runs or is dead-lettered again.
    await new Promise((r) => setTimeout(r, 5_000));
    expect(runs()).toBe(MAX_WORKER_ATTEMPTS);
    expect(await dlqCount()).toBe(1);
    expect((await fetch(`http://127.0.0.1:${runner.httpPort}/healthz`)).status).toBe(200);
  });

  it("with a request behind it (one batch: the loop's bisection hands the given-up record back): no run more, and the partition moves on", async () => {
    const dataTo = Date.now();
    await insertLabeled(ch, 'fails', dataTo - 10 * 60_000, dataTo, 300);
    // 'behind' has no labels and no wait: refused at once.
    await publish(['fails', 'behind'], dataTo);
    await eventually(async () => ((await dlqCount()) >= 3 ? true : undefined), 30_000, 200);
    const [, givenUp, behind] = await readTopic(kafka, `${retrainTopic}.dlq`, 3);
    expect(String(givenUp?.headers['driftline.dlq.reason'])).toMatch(reasonOf('fails'));
    expect(String(behind?.headers['driftline.dlq.reason'])).toContain('behind');
    expect(runs()).toBe(2 * MAX_WORKER_ATTEMPTS);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(runs()).toBe(2 * MAX_WORKER_ATTEMPTS);
    expect(await dlqCount()).toBe(3);
  });
  // Below, the operator's ways of handling a given-up request again (found by a review: the give-up
  // record was keyed by topic/partition@offset alone and never expired, so each was given up at
  // once with the old reason, never a run).
  const dlqReasons = async (n: number) =>
    (await readTopic(kafka, `${retrainTopic}.dlq`, n)).map((r) => String(r.headers['driftline.dlq.reason']));

  it('the group reset under the same configuration (as a redelivery after a crash): given up again at once, no run', async () => {
    await stopAndReset();
    await start();
    await eventually(async () => ((await dlqCount()) >= 6 ? true : undefined), 30_000, 200);
    const [alone, fails, behind] = (await dlqReasons(6)).slice(3);
    expect(alone).toMatch(reasonOf('alone'));
    expect(fails).toMatch(reasonOf('fails'));
    expect(behind).toContain('behind');
    expect(runs()).toBe(2 * MAX_WORKER_ATTEMPTS);
  });

  it('the group reset after raising DRIFTLINE_TRAINER_TIMEOUT: each given-up request runs again, then is given up again', async () => {
    const runsBefore = runs();
    await stopAndReset();
    await start({ DRIFTLINE_TRAINER_TIMEOUT: '30s' });
    await eventually(async () => ((await dlqCount()) >= 9 ? true : undefined), 60_000, 200);
    // Before: 0 runs, the three dead-lettered again at once with the reasons of the 20 min timeout.
    expect(runs() - runsBefore).toBe(2 * MAX_WORKER_ATTEMPTS);
    const [alone, fails] = (await dlqReasons(9)).slice(6);
    expect(alone).toMatch(reasonOf('alone'));
    expect(fails).toMatch(reasonOf('fails'));
  });

  it('the topic deleted and recreated, the request sent again at the offset it had: another record, fresh runs', async () => {
    const before = await dlqCount();
    const runsBefore = runs();
    await stopAndReset(async () => {
      await deleteTopics(kafka, [retrainTopic]);
      await eventually(
        () =>
          ensureTopics(kafka, [{ topic: retrainTopic, partitions: 1 }]).then(
            () => true,
            () => undefined,
          ),
        30_000,
        300,
      );
      await publish(['alone'], aloneDataTo); // offset 0, as the first time
    });
    const [offsets] = await topicOffsets(kafka, retrainTopic);
    expect(offsets).toMatchObject({ low: 0n, high: 1n });
    // The configuration of the last give-up (its record is what differs).
    await start({ DRIFTLINE_TRAINER_TIMEOUT: '30s' });
    await eventually(async () => ((await dlqCount()) >= before + 1 ? true : undefined), 60_000, 200);
    // Before: given up at once, without a run, as the record given up at that offset of the old topic.
    expect(runs() - runsBefore).toBe(MAX_WORKER_ATTEMPTS);
    expect((await dlqReasons(before + 1)).at(-1)).toMatch(reasonOf('alone'));
  });
});
