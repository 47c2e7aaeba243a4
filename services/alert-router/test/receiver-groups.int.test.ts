import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setGroupOffsets, topicOffsets } from '@driftline/kafka';
import { type Runner, type ServiceDefinition, startRunner } from '@driftline/service';
import { eventually, freePort, kafkaFor, uniqueName } from '@driftline/test-support';
import { type ClickHouse, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { alertRouterService } from '../src/index.js';
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

describe('alert-router: a consumer group per receiver', () => {
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

  it("starts where an older router's single group was, and a receiver that is down never holds back the others' later alerts", async () => {
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

  it('a renamed receiver under a new group name starts at the end of the topic, not its history (found by a review)', async () => {
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
