import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createProducer } from '@driftline/kafka';
import { contracts, type RetrainRequest } from '@driftline/schemas';
import type { Runner } from '@driftline/service';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { type ClickHouse, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dlqRecordCount, insertLabeledRows, retrainRequestOf, startTrainerOnStack } from './on-stack.js';

const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'trainer-wait-ch-'));
const prefix = `${uniqueName('label-wait')}.`;
const database = uniqueName('label_wait').replace('-', '_');
const retrainTopic = `${prefix}retrain.v1`;
const MIN_ROWS = 100;
const LABEL_WAIT_MS = 120_000;

/** `n` labeled predictions of `model` spread over [from, to), as the label-joiner writes them. */
async function insertLabeled(ch: ClickHouse, model: string, from: number, to: number, n: number): Promise<void> {
  const r = seededUniform(11);
  await insertLabeledRows(ch, model, from, to, n, () => {
    const x = r() * 4 - 2;
    return { features: { x, noise: r() }, label: r() < 1 / (1 + Math.exp(-2 * x)) ? 1 : 0 };
  });
}

async function publish(request: RetrainRequest, topic = retrainTopic, partition?: number): Promise<void> {
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.retrain, topic);
  const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
  await producer.send(topic, [
    { key: request.model, value: await codec.encode(request), ...(partition === undefined ? {} : { partition }) },
  ]);
  await producer.disconnect();
}

/**
 * The trainer alone on the stack, ready: polls every 300 ms, a 5 s stall timeout (shorter than the
 * waits: a wait is no stall).
 */
function startTrainer(opts: { prefix: string; database: string; partitions: number; labelWait: string }) {
  const { labelWait, ...where } = opts;
  return startTrainerOnStack(
    stack,
    { ...where, chPath, artifactDir: mkdtempSync(join(tmpdir(), 'trainer-wait-art-')) },
    {
      DRIFTLINE_TRAINER_ROUNDS: '10',
      DRIFTLINE_TRAINER_MIN_ROWS: String(MIN_ROWS),
      DRIFTLINE_TRAINER_PROMOTION_MARGIN: '0',
      DRIFTLINE_TRAINER_LABEL_WAIT: labelWait,
      DRIFTLINE_TRAINER_LABEL_POLL: '300ms',
      DRIFTLINE_STALL_TIMEOUT: '5s',
    },
  );
}

// The two describes run at once: each has its own topics, group, ClickHouse database and trainer
// (the embedded engine is the process's one), and most of their time is waiting by design. Within
// the first, the tests share the trainer's one partition: one after the other.
describe.concurrent('the trainer waits a bounded time for labels that lag (DRIFTLINE_TRAINER_LABEL_WAIT)', () => {
  let ch: ClickHouse;
  let runner: Runner;
  const kafka = kafkaFor(stack.kafkaBrokers);

  const http = (path: string) => fetch(`http://127.0.0.1:${runner.httpPort}${path}`);
  const waitingGauge = async (model: string) => {
    const text = await http('/metrics').then((r) => r.text());
    return new RegExp(`^driftline_trainer_waiting_for_labels\\{model="${model}"[^}]*\\} (\\d+)$`, 'm').exec(text)?.[1];
  };
  const dlqCount = () => dlqRecordCount(kafka, retrainTopic);
  const published = (model: string) =>
    ch.select<{ version: string; status: string; rows_train: string }>(
      `SELECT version, status, rows_train FROM ${ch.table('model_versions')} FINAL WHERE model = {model:String} AND published = 1`,
      { model },
    );

  beforeAll(async () => {
    ch = await createClickHouse({ mode: 'embedded', path: chPath, database });
    await migrate(ch, migrations);
    // One partition: the requests queue behind each other, as requests of models sharing one do.
    // Ready (joined to its group) before anything is published: the waits below are timed from publishing.
    runner = await startTrainer({ prefix, database, partitions: 1, labelWait: `${LABEL_WAIT_MS}ms` });
  });

  afterAll(async () => {
    await runner?.stop();
  });

  it.sequential('refuses into the DLQ, with the reason, once data_to + the wait has passed; healthy while waiting', async () => {
    // The wait of this window ends ~30 s from now: headroom for a slow start on a loaded machine
    // before the checks below that nothing was dead-lettered yet.
    const dataTo = Date.now() - LABEL_WAIT_MS + 30_000;
    await insertLabeled(ch, 'late', dataTo - 10 * 60_000, dataTo, 20); // 20 of the 100 needed, never more
    await publish(retrainRequestOf('late', dataTo));
    await eventually(async () => ((await waitingGauge('late')) === '1' ? true : undefined), 20_000, 100);
    expect(await dlqCount()).toBe(0);
    // Past the 5 s stall timeout while waiting: still healthy (a wait is work, not a stall).
    await new Promise((r) => setTimeout(r, 5_500));
    expect(Date.now()).toBeLessThan(dataTo + LABEL_WAIT_MS); // else the check below proves nothing
    expect(await dlqCount()).toBe(0);
    expect((await http('/healthz')).status).toBe(200);

    await eventually(async () => ((await dlqCount()) === 1 ? true : undefined), 30_000, 200);
    expect(Date.now()).toBeGreaterThanOrEqual(dataTo + LABEL_WAIT_MS);
    const [dead] = await readTopic(kafka, `${retrainTopic}.dlq`, 1);
    const reason = String(dead?.headers['driftline.dlq.reason'] ?? '');
    expect(reason).toContain('20 labeled rows of late');
    expect(reason).toContain(`awaited until ${new Date(dataTo + LABEL_WAIT_MS).toISOString()}`);
    expect(await waitingGauge('late')).toBe('0');
    expect(await published('late')).toEqual([]);
  });

  it.sequential('trains once the labels arrive, nothing dead-lettered', async () => {
    const dataTo = Date.now();
    await publish(retrainRequestOf('lagging', dataTo));
    await eventually(async () => ((await waitingGauge('lagging')) === '1' ? true : undefined), 20_000, 100);
    await new Promise((r) => setTimeout(r, 1_000)); // a few polls find nothing
    expect(await published('lagging')).toEqual([]);
    await insertLabeled(ch, 'lagging', dataTo - 10 * 60_000, dataTo, 300); // the labels land
    const rows = await eventually(async () => {
      const r = await published('lagging');
      return r.length > 0 ? r : undefined;
    }, 90_000);
    expect(rows).toHaveLength(1);
    expect(Number(rows[0]!.rows_train)).toBe(240); // 300 rows, 20 % held out
    expect(await waitingGauge('lagging')).toBe('0');
    expect(await dlqCount()).toBe(1); // only the first test's
  });
});

describe.concurrent('a request waiting for labels holds only its own partition (found by a review)', () => {
  const waitPrefix = `${uniqueName('label-wait-2p')}.`;
  const waitTopic = `${waitPrefix}retrain.v1`;
  const waitDatabase = uniqueName('label_wait_2p').replace('-', '_');
  let ch: ClickHouse;
  let runner: Runner;

  const http = (path: string) => fetch(`http://127.0.0.1:${runner.httpPort}${path}`);
  const published = (model: string) =>
    ch.select<{ version: string }>(
      `SELECT version FROM ${ch.table('model_versions')} FINAL WHERE model = {model:String} AND published = 1`,
      { model },
    );

  beforeAll(async () => {
    ch = await createClickHouse({ mode: 'embedded', path: chPath, database: waitDatabase });
    await migrate(ch, migrations);
    // The waiting request waits past the end of this test: it must not hold the other partition.
    runner = await startTrainer({ prefix: waitPrefix, database: waitDatabase, partitions: 2, labelWait: '30m' });
  });

  afterAll(async () => {
    await runner?.stop();
  });

  it('another partition trains within seconds while one request waits; its own partition waits, healthy', async () => {
    const dataTo = Date.now();
    await publish(retrainRequestOf('waits', dataTo), waitTopic, 1); // no labels at all yet
    const text = () => http('/metrics').then((r) => r.text());
    await eventually(
      async () =>
        /^driftline_trainer_waiting_for_labels\{model="waits"[^}]*\} 1$/m.test(await text()) ? true : undefined,
      20_000,
      100,
    );
    // Published once the other is waiting (the reviewer's order): it needs a fetch of its own.
    await insertLabeled(ch, 'ready', dataTo - 10 * 60_000, dataTo, 300);
    await publish(retrainRequestOf('ready', dataTo), waitTopic, 0);
    await eventually(async () => ((await published('ready')).length === 1 ? true : undefined), 60_000, 200);
    // A later request on the waiting partition queues behind it (requests of one model keep their order).
    await insertLabeled(ch, 'behind', dataTo - 10 * 60_000, dataTo, 300);
    await publish(retrainRequestOf('behind', dataTo), waitTopic, 1);
    await new Promise((r) => setTimeout(r, 6_000)); // past the stall timeout
    expect(await published('behind')).toEqual([]);
    expect(await published('waits')).toEqual([]);
    expect((await http('/healthz')).status).toBe(200);
    expect(await text()).toMatch(/^driftline_trainer_waiting_for_labels\{model="waits"[^}]*\} 1$/m);
  });
});
