import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SinkUnavailableError, silentLogger } from '@driftline/core';
import {
  committedOffsets,
  createProducer,
  deleteTopics,
  describeGroup,
  ensureTopics,
  listTopics,
  setGroupOffsets,
  startConsumer,
  topicOffsets,
} from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import { type Runner, type ServiceDefinition, startRunner } from '@driftline/service';
import { eventually, freePort, kafkaFor, uniqueName } from '@driftline/test-support';
import { type ClickHouse, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { alertRouterService } from '../src/index.js';
import { receiverGroupId, seedReceiverGroups } from '../src/receiver-groups.js';
import { driftAlert, publishAlerts, type Received, Receiver, routerEnv } from './fixtures.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'alert-router-groups-'));
const prefix = `${uniqueName('rgroups')}.`;
const database = uniqueName('rgroups').replaceAll('-', '_');
const topic = `${prefix}alerts.v1`;
const BASE = Math.floor((Date.now() - 60_000) / 3_600_000) * 3_600_000;
/** What a down receiver may take per message before it is recorded failed. */
const RETRY_BUDGET_MS = 40_000;

const ids = (r: Received) => r.body.alert_ids as string[];

// The three describes run at once: each has its own topics, groups, ClickHouse database and
// receivers (the embedded engine is the process's one); most of their time is group joins, seeds
// and retries. Within the first, the tests share the router and receivers: one after the other.
describe.concurrent('alert-router: a consumer group per receiver', () => {
  let ch: ClickHouse;
  let runner: Runner | undefined;
  let up: Receiver;
  let down: Receiver; // answers 500 to everything
  const routesFile = join(dir, 'routes.yaml');

  beforeAll(async () => {
    up = new Receiver(await freePort());
    down = new Receiver(await freePort(), () => 500);
    await up.start();
    await down.start();
    writeFileSync(
      routesFile,
      `version: 1
group_window: 1m
receivers:
  down: { url: "http://127.0.0.1:${down.port}/down" }
  up: { url: "http://127.0.0.1:${up.port}/up" }
routes:
  - receivers: [down, up]
`,
    );
    ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'chdb'), database });
    await migrate(ch, migrations);
  });

  afterAll(async () => {
    await runner?.stop();
    await up?.stop();
    await down?.stop();
  });

  it.sequential("starts where an older router's single group was, and a receiver that is down never holds back the others' later alerts", async () => {
    // An older router (one group for every receiver) had handled o1 and o2: committed past them.
    await publishAlerts(stack, topic, [driftAlert('o1', BASE), driftAlert('o2', BASE)]);
    const kafka = kafkaFor(stack.kafkaBrokers);
    const [end] = await topicOffsets(kafka, topic);
    await setGroupOffsets(kafka, `${prefix}router`, topic, new Map([[0, end!.high]]));

    runner = await startRunner({
      services: [alertRouterService as unknown as ServiceDefinition<never, unknown>],
      env: routerEnv({
        stack,
        prefix,
        database,
        chdbPath: join(dir, 'chdb'),
        routesFile,
        group: 'router',
        retryBudget: `${RETRY_BUDGET_MS / 1000}s`,
      }),
    });
    await publishAlerts(stack, topic, [driftAlert('b1', BASE + 60_000)]);
    await eventually(async () => (up.on('/up').some((r) => ids(r).includes('b1')) ? true : undefined), 20_000);
    // `down` is retrying b1 (it may, for RETRY_BUDGET_MS): its group joins on its own schedule, so
    // wait for its second attempt. The next batch reaches `up` at once: with one group for both,
    // it waited for b1's budget to run out at `down`.
    await eventually(async () => (down.on('/down').length >= 2 ? true : undefined), 20_000);
    const sent = Date.now();
    await publishAlerts(stack, topic, [driftAlert('b2', BASE + 120_000)]);
    await eventually(async () => (up.on('/up').some((r) => ids(r).includes('b2')) ? true : undefined), 20_000);
    const took = Date.now() - sent;
    expect(took).toBeLessThan(RETRY_BUDGET_MS / 4);
    expect(down.on('/down').every((r) => ids(r).join() === 'b1')).toBe(true); // still on b1 meanwhile

    // Nothing the older router's group had handled was sent again.
    const seen = [...up.received, ...down.received].flatMap(ids);
    expect(seen).not.toContain('o1');
    expect(seen).not.toContain('o2');
    const recorded = await ch.select<{ receiver: string; status: string }>(
      `SELECT receiver, status FROM ${ch.table('alert_deliveries')} WHERE receiver = 'down'`,
    );
    expect(recorded).toEqual([]); // b1 is not given up yet: down's group has committed nothing
    console.log(`alert-router: up got the next batch ${took} ms after it was sent, while down retried`);
  });

  it.sequential('a renamed receiver under a new group name starts at the end of the topic, not its history (found by a review)', async () => {
    await runner?.stop();
    runner = undefined;
    const renamedFile = join(dir, 'renamed.yaml');
    writeFileSync(
      renamedFile,
      `receivers: { renamed: { url: "http://127.0.0.1:${up.port}/renamed" } }\nroutes: [{ receivers: [renamed] }]\n`,
    );
    runner = await startRunner({
      services: [alertRouterService as unknown as ServiceDefinition<never, unknown>],
      env: routerEnv({
        stack,
        prefix,
        database,
        chdbPath: join(dir, 'chdb'),
        routesFile: renamedFile,
        group: 'router-renamed', // no group of that name committed anything: nothing to start from
        retryBudget: '5s',
      }),
    });
    await publishAlerts(stack, topic, [driftAlert('n1', BASE + 180_000)]);
    await eventually(async () => (up.on('/renamed').length > 0 ? true : undefined), 20_000);
    // From the beginning it re-sent o1, o2, b1 and b2, which the topic still held.
    expect(up.on('/renamed').flatMap(ids)).toEqual(['n1']);
  });
});

// Its two tests share nothing but the receiver's database: at once.
describe.concurrent('alert-router: a receiver whose commits were deleted with its topic', () => {
  const recreated = `${uniqueName('rgone')}.`;
  const goneDatabase = uniqueName('rgone').replaceAll('-', '_');
  const goneTopic = `${recreated}alerts.v1`;
  const routesFile = join(dir, 'gone.yaml');
  let ch: ClickHouse;
  let hook: Receiver;
  let runner: Runner | undefined;
  const start = () =>
    startRunner({
      services: [alertRouterService as unknown as ServiceDefinition<never, unknown>],
      env: routerEnv({
        stack,
        prefix: recreated,
        database: goneDatabase,
        chdbPath: join(dir, 'chdb'),
        routesFile,
        group: 'router',
        retryBudget: '5s',
      }),
    });

  beforeAll(async () => {
    hook = new Receiver(await freePort());
    await hook.start();
    writeFileSync(
      routesFile,
      `receivers: { hook: { url: "http://127.0.0.1:${hook.port}/hook" } }\nroutes: [{ receivers: [hook] }]\n`,
    );
    ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'chdb'), database: goneDatabase });
    await migrate(ch, migrations);
  });

  afterAll(async () => {
    await runner?.stop();
    await hook?.stop();
  });

  it('reads the topic created again from its start: the alert published while it was stopped is delivered, once (found by a review)', async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const group = receiverGroupId(`${recreated}router`, 'hook');
    runner = await start();
    await publishAlerts(stack, goneTopic, [driftAlert('g1', BASE)]);
    await eventually(
      async () => ((await committedOffsets(kafka, group, goneTopic)).get(0) === 1n ? true : undefined),
      20_000,
    );
    await runner.stop();
    runner = undefined;

    // Stopped: the topic is deleted (its groups' commits with it) and created again; the drift-monitor
    // publishes g2, and g1 again (a replay) that the record must drop.
    await deleteTopics(kafka, [goneTopic]);
    await eventually(async () => ((await listTopics(kafka)).includes(goneTopic) ? undefined : true), 90_000);
    await publishAlerts(stack, goneTopic, [driftAlert('g1', BASE), driftAlert('g2', BASE + 60_000)]);
    expect((await committedOffsets(kafka, group, goneTopic)).get(0) ?? -1n).toBe(-1n);

    runner = await start();
    // Seeded at the end (`latest`), g2 was never delivered: "new receiver group: where it starts".
    await eventually(
      async () => ((await committedOffsets(kafka, group, goneTopic)).get(0) === 2n ? true : undefined),
      20_000,
    );
    expect(hook.on('/hook').map(ids)).toEqual([['g1'], ['g2']]);
  }, 150_000);

  it('a ClickHouse outage while reading the delivery record fails the start retriably and seeds nothing, never at the end', async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = `${recreated}outage.alerts.v1`;
    await publishAlerts(stack, topic, [driftAlert('x1', BASE)]);
    const down = {
      receiversWithDeliveries: () => Promise.reject(new SinkUnavailableError('clickhouse query: ECONNREFUSED')),
    };
    await expect(seedReceiverGroups(kafka, topic, `${recreated}outage`, ['hook'], down)).rejects.toMatchObject({
      retriable: true,
    });
    expect((await committedOffsets(kafka, `${recreated}outage.hook`, topic)).get(0) ?? -1n).toBe(-1n);
  });
});

describe.concurrent('alert-router: a start that fails between two seeds (found by a review)', () => {
  const run = `${uniqueName('rseed')}.`;
  const seedTopic = `${run}alerts.v1`;
  // 'b' has delivery records (its commits were deleted); 'a' is a receiver added now.
  const history = {
    receiversWithDeliveries: async (receivers: readonly string[]) => new Set(receivers.filter((r) => r === 'b')),
  };

  /** A member in `groupId`, reading another topic: the broker refuses to set the group's offsets meanwhile. */
  async function occupied(groupId: string): Promise<() => Promise<void>> {
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic: `${run}idle`, partitions: 1 }]);
    const producer = await createProducer(kafka);
    const member = await startConsumer<Buffer | null>({
      kafka,
      groupId,
      topics: [`${run}idle`],
      producer,
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      processor: { decode: (r) => r.value, async process() {} },
    });
    await eventually(async () => ((await describeGroup(kafka, groupId)).members > 0 ? true : undefined), 60_000);
    return async () => {
      await member.stop();
      await producer.disconnect();
    };
  }

  // The other order ([b, a], a refused: a sent the whole history) is checked on the pure plan
  // (receiver-groups.test.ts): each seed takes seconds on the real broker.
  it('routes [a, b], the seed of b refused after a was seeded: the retry reads b from the start of the topic, not the end', async () => {
    const kafka = kafkaFor(stack.kafkaBrokers);
    const group = `${run}router`;
    const receivers = ['a', 'b'];
    // Published while the router was stopped: b must get them, a (new) must not.
    await publishAlerts(stack, seedTopic, [driftAlert('s1', BASE), driftAlert('s2', BASE)]);
    const [watermarks] = await topicOffsets(kafka, seedTopic);
    const release = await occupied(receiverGroupId(group, 'b'));
    await expect(seedReceiverGroups(kafka, seedTopic, group, receivers, history)).rejects.toThrow(/offsets of .*\.b/);
    await release();
    expect((await committedOffsets(kafka, receiverGroupId(group, 'a'), seedTopic)).get(0)).toBe(watermarks!.high);

    // The runner's retry of the start: a, seeded, now looks like a running receiver.
    expect(await seedReceiverGroups(kafka, seedTopic, group, receivers, history)).toEqual([
      { receiver: 'b', from: 'start of topic' },
    ]);
    expect((await committedOffsets(kafka, receiverGroupId(group, 'a'), seedTopic)).get(0)).toBe(watermarks!.high);
    expect((await committedOffsets(kafka, receiverGroupId(group, 'b'), seedTopic)).get(0)).toBe(watermarks!.low);
  }, 90_000);
});
