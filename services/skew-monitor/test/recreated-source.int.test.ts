import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { committedOffsets, deleteTopics, ensureTopics, topicOffsets } from '@driftline/kafka';
import { createRedisOnlineStore, type RedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import type { FeatureEvent, PredictionEvent } from '@driftline/schemas';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { skewMonitorService } from '../src/service.js';
import { producePredictions, skewEnv } from './fixtures/stack.js';

const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'skew-rec-ch-'));
const dir = mkdtempSync(join(tmpdir(), 'skew-rec-'));
const VIEWS_YAML = `
views:
  - name: spend
    entity: user_id
    features: { amount: double }
`;
const views = parseFeatureViewsText(VIEWS_YAML);
const WINDOW = 60_000;
const T0 = Math.floor((Date.now() - 30 * 60_000) / WINDOW) * WINDOW;
const ENTITIES = 10;
const PARTITIONS = 2;
/** Predictions of the old log (per partition: offsets 0 … 99) and of the new one (0 … 39, below them). */
const OLD = 200;
const NEW = 80;

/** `count` predictions of window T0, every one sampled (rate 1), matching the store's rows. */
function predictions(tag: string, count: number): PredictionEvent[] {
  return Array.from({ length: count }, (_, i) => ({
    prediction_id: `${tag}-${i}`,
    model: 'fraud',
    model_version: 'v1',
    entity_id: `u${i % ENTITIES}`,
    event_time: T0 + Math.floor((i * WINDOW) / (2 * count)),
    features: { amount: 10 + (i % ENTITIES) },
    prediction: 0.5,
    predicted_class: null,
    role: 'production',
    scores: null,
  }));
}

/**
 * The predictions topic deleted and created again (found by a review): skew_windows' rows carried
 * the old log's offsets as their replacing version and their replay guard, so the new log's counts
 * of a window spanning the recreation were hidden by the old row, and a monitor started after it
 * skipped the new log's predictions as replays of the old log's offsets.
 */
describe('skew-monitor over a source topic recreated (real Kafka, registry, Redis, embedded ClickHouse)', () => {
  const runners: Runner[] = [];
  let writer: RedisOnlineStore;
  const keyPrefix = uniqueName('skewrec').replaceAll('-', '_');

  beforeAll(async () => {
    writer = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-write', keyPrefix });
    await waitReady(writer.client);
    const rows: FeatureEvent[] = Array.from({ length: ENTITIES }, (_, u) => ({
      event_id: `s${u}`,
      view: 'spend',
      entity_id: `u${u}`,
      event_time: T0 - 10_000,
      features: { amount: 10 + u },
    }));
    await writer.write(planWrites(rows.map((e) => validateFeatureEvent(views, e))));
  });
  afterEach(async () => {
    for (const runner of runners.splice(0).reverse()) await runner.stop().catch(() => {});
  });
  afterAll(async () => {
    await writer.close();
  });

  async function setUp() {
    const prefix = `${uniqueName('skew-rec')}.`;
    const topic = `${prefix}predictions.v1`;
    const database = uniqueName('skewrec').replaceAll('-', '_');
    const ch = await createClickHouse({ mode: 'embedded', path: chPath, database });
    await migrate(ch, migrations);
    const start = async (group: string) => {
      const env = { dir, viewsYaml: VIEWS_YAML, prefix, database, chPath, keyPrefix, group, sampleRate: 1 };
      const runner = await startRunner({ services: [skewMonitorService as never], env: skewEnv(stack, env) });
      runners.push(runner);
      return runner;
    };
    const kafka = kafkaFor(stack.kafkaBrokers);
    const produce = (list: readonly PredictionEvent[]) => producePredictions(stack, topic, list);
    const recreate = async () => {
      await deleteTopics(kafka, [topic]);
      await sleep(300);
      await ensureTopics(kafka, [{ topic, partitions: PARTITIONS }]);
    };
    /** The window's `amount` predictions counted, over every partition (and log). */
    const sampled = async () => {
      const [total] = await warehouseOn(ch).skewWindows.totals(
        topic,
        [{ model: 'fraud', version: 'v1', windowStart: T0 }],
        WINDOW,
      );
      return total?.counts.sampled ?? 0;
    };
    /** The count once it reaches `expected`, else (after the wait) what it is. */
    const reaches = (expected: number, ms = 30_000) =>
      eventually(async () => ((await sampled()) === expected ? expected : undefined), ms, 250).catch(() => sampled());
    /** Resolves once `group` has committed the whole topic (its writes are acknowledged by then). */
    const committed = (group: string) =>
      eventually(async () => {
        const commits = await committedOffsets(kafka, `${prefix}${group}`, topic);
        const offsets = await topicOffsets(kafka, topic);
        return offsets.every((o) => commits.get(o.partition) === o.high) ? true : undefined;
      }, 60_000);
    return { ch, start, produce, recreate, sampled, reaches, committed };
  }

  it("counts a window spanning the recreation as the old log's predictions plus the new log's", async () => {
    const { ch, start, produce, recreate, reaches, committed } = await setUp();
    await start('g1');
    await produce(predictions('old', OLD));
    expect(await reaches(OLD)).toBe(OLD);
    await committed('g1');

    await recreate();
    await produce(predictions('new', NEW));
    // Before: the new log's row (offsets 0 … 39) lost to the old one (through 99): still 200.
    expect(await reaches(OLD + NEW)).toBe(OLD + NEW);
    await committed('g1');

    // A second deployment reading the new log from its start counts nothing twice: a replay of the
    // same log is still a replay.
    await runners.splice(0)[0]!.stop();
    await start('g2');
    await committed('g2');
    expect(await reaches(OLD + NEW, 3_000)).toBe(OLD + NEW);
    await ch.close();
  });

  it('a monitor started after the recreation counts the new log, and its later records', async () => {
    const { ch, start, produce, recreate, reaches, committed } = await setUp();
    await start('g1');
    await produce(predictions('old', OLD));
    expect(await reaches(OLD)).toBe(OLD);
    await committed('g1');
    await runners.splice(0)[0]!.stop();

    // Recreated while no monitor ran: nothing tells the next one but the rows' offsets past the log's end.
    await recreate();
    await produce(predictions('new', NEW));
    await start('g1');
    // Before: the new log's predictions (offsets ≤ 39) were skipped as replays of the old row (through 99).
    expect(await reaches(OLD + NEW)).toBe(OLD + NEW);
    await committed('g1');

    // The next owner (a restart) takes up the new log's rows, not the old log's: more of the new
    // log, still below the old offsets, are counted, and a replay of the new log is not.
    await runners.splice(0)[0]!.stop();
    await produce(predictions('later', NEW));
    await start('g1');
    expect(await reaches(OLD + 2 * NEW)).toBe(OLD + 2 * NEW);
    await committed('g1');
    await runners.splice(0)[0]!.stop();
    await start('g3');
    await committed('g3');
    expect(await reaches(OLD + 2 * NEW, 3_000)).toBe(OLD + 2 * NEW);
    await ch.close();
  });
});
