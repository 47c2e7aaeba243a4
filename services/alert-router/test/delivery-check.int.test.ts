import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Runner, type ServiceDefinition, startRunner } from '@driftline/service';
import { eventually, freePort, uniqueName } from '@driftline/test-support';
import { type ClickHouse, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { alertRouterService } from '../src/index.js';
import { driftAlert, publishAlerts, type Received, Receiver, routerEnv } from './fixtures.js';

// The service on the real stack (Kafka, registry, embedded ClickHouse): a message alone in its
// batch that one receiver always answers 500 while another receiver is down for everything.
const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'alert-router-check-'));
const prefix = `${uniqueName('rcheck')}.`;
const database = uniqueName('rcheck').replaceAll('-', '_');
const topic = `${prefix}alerts.v1`;
const BASE = Math.floor((Date.now() - 60_000) / 3_600_000) * 3_600_000;

const ids = (r: Received) => r.body.alert_ids as string[];
const isCheck = (r: Received) => r.body.group === 'delivery-check';

describe('alert-router: a message a receiver keeps failing, alone in its batch', () => {
  let ch: ClickHouse;
  let runner: Runner | undefined;
  let picky: Receiver; // 500 for any message carrying `poison`, 200 otherwise (the check included)
  let down: Receiver; // 503 for everything until `downIsUp`
  let downIsUp = false;
  const routesFile = join(dir, 'routes.yaml');

  beforeAll(async () => {
    picky = new Receiver(await freePort(), (_path, _n, body) =>
      (body.alert_ids as string[]).includes('poison') ? 500 : 200,
    );
    down = new Receiver(await freePort(), () => (downIsUp ? 200 : 503));
    await picky.start();
    await down.start();
    writeFileSync(
      routesFile,
      `version: 1
receivers:
  picky: { url: "http://127.0.0.1:${picky.port}/picky" }
  down: { url: "http://127.0.0.1:${down.port}/down" }
routes:
  - receivers: [picky, down]
`,
    );
    ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'chdb'), database });
    await migrate(ch, migrations);
  });

  afterAll(async () => {
    await runner?.stop();
    await picky?.stop();
    await down?.stop();
  });

  it('is given up at the receiver that takes a delivery check, and never at the receiver that is down', async () => {
    runner = await startRunner({
      services: [alertRouterService as unknown as ServiceDefinition<never, unknown>],
      env: routerEnv({
        stack,
        prefix,
        database,
        chdbPath: join(dir, 'chdb'),
        routesFile,
        group: 'router',
        retryBudget: '2s',
        start: 'earliest',
      }),
    });
    await publishAlerts(stack, topic, [driftAlert('poison', BASE)]);

    // picky: the budget, a check (taken), the budget again, two checks, then recorded failed. Before, with
    // nothing else sent after it, it was retried as an outage for ever, its partition uncommitted.
    const failed = await eventually(async () => {
      const rows = await deliveries('picky');
      return rows.length > 0 ? rows : undefined;
    }, 60_000);
    expect(failed).toEqual([
      { status: 'failed', ids: ['poison'], error: expect.stringMatching(/2 delivery checks meanwhile: given up$/) },
    ]);
    expect(picky.on('/picky').filter(isCheck)).toHaveLength(3);
    // The partition moved on: the next alert reaches picky.
    await publishAlerts(stack, topic, [driftAlert('next', BASE + 60_000)]);
    await eventually(async () => (picky.on('/picky').some((r) => ids(r).includes('next')) ? true : undefined), 30_000);

    // down: every attempt of the batch ends in a check that fails too: nothing given up, however
    // many rounds (wait for two checks: two attempts of the batch).
    await eventually(async () => (down.on('/down').filter(isCheck).length >= 2 ? true : undefined), 60_000);
    expect(await deliveries('down')).toEqual([]);
    expect(down.on('/down').some((r) => ids(r).includes('next'))).toBe(false); // held behind `poison`
    downIsUp = true;
    const delivered = await eventually(async () => {
      const rows = await deliveries('down');
      return rows.length >= 2 ? rows : undefined;
    }, 60_000);
    expect(delivered.map((r) => [r.status, r.ids.join()])).toEqual([
      ['delivered', 'poison'],
      ['delivered', 'next'],
    ]);
  });

  const deliveries = (receiver: string) =>
    ch.select<{ status: string; ids: string[]; error: string }>(
      `SELECT status, alert_ids AS ids, error FROM ${ch.table('alert_deliveries')}
       WHERE receiver = {receiver:String} ORDER BY finished_at`,
      { receiver },
    );
});
