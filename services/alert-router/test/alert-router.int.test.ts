import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DriftAlert } from '@driftline/schemas';
import { type Runner, type ServiceDefinition, startRunner } from '@driftline/service';
import { eventually, freePort, uniqueName } from '@driftline/test-support';
import { type ClickHouse, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { alertRouterService } from '../src/index.js';
import { driftAlert, publishAlerts, type Received, Receiver, routerEnv } from './fixtures.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'alert-router-'));
const prefix = `${uniqueName('router')}.`;
const database = uniqueName('router').replaceAll('-', '_');
const HOUR = 3_600_000;
const BASE = Math.floor((Date.now() - 60_000) / HOUR) * HOUR; // one group bucket (1h) for a1..a3

const alert = (id: string, over: Partial<DriftAlert> = {}) => driftAlert(id, BASE, over);
const topic = `${prefix}alerts.v1`;
const publish = (alerts: readonly DriftAlert[]) => publishAlerts(stack, topic, alerts);

const ids = (r: Received) => r.body.alert_ids as string[];

describe('alert-router on the real stack: routes, bodies, grouping, rate limit, retries, dedupe across restarts', () => {
  let ch: ClickHouse;
  let runner: Runner | undefined;
  let hooks: Receiver; // oncall (Slack), team, limited, refusing (422: it reads the body and refuses it)
  let flaky: Receiver; // 500, 500, then refused, then 200
  let flakyBackAt = 0;
  const routesFile = join(dir, 'routes.yaml');

  const env = (group: string) =>
    // `earliest`: alerts are published before the router starts, and g2 replays them all.
    routerEnv({
      stack,
      prefix,
      database,
      chdbPath: join(dir, 'chdb'),
      routesFile,
      group,
      retryBudget: '60s',
      start: 'earliest',
    });
  const start = (group: string) =>
    startRunner({ services: [alertRouterService as unknown as ServiceDefinition<never, unknown>], env: env(group) });

  const deliveries = () =>
    ch.select<{
      receiver: string;
      alert_ids: string[];
      status: string;
      attempts: number;
      http_status: number | null;
      error: string;
      group_key: string;
    }>(
      `SELECT receiver, alert_ids, status, attempts, http_status, error, group_key
       FROM ${ch.table('alert_deliveries')} ORDER BY finished_at, receiver`,
    );

  beforeAll(async () => {
    hooks = new Receiver(await freePort(), (path) => (path === '/refusing' ? 422 : 200));
    await hooks.start();
    // flaky answers 500 twice, then refuses connections for 1.5 s (its server closed), then answers 200.
    flaky = new Receiver(
      await freePort(),
      (_path, n) => (n <= 2 ? 500 : 200),
      (n) => {
        if (n !== 2) return;
        void flaky.stop().then(() =>
          setTimeout(() => {
            flakyBackAt = Date.now();
            void flaky.start();
          }, 1_500),
        );
      },
    );
    await flaky.start();
    const h = `http://127.0.0.1:${hooks.port}`;
    writeFileSync(
      routesFile,
      `version: 1
group_window: 1h
receivers:
  oncall: { url: "${h}/oncall", format: slack, headers: { X-Token: s3cret-token } }
  team: { url: "${h}/team" }
  limited: { url: "${h}/limited", rate_limit: { per_minute: 1, burst: 2 } }
  refusing: { url: "${h}/refusing" }
  flaky: { url: "http://127.0.0.1:${flaky.port}/flaky" }
routes:
  - match: { model: "fraud*", severity: critical }
    receivers: [oncall]
    continue: true
  - match: { model: [fraud, churn] }
    receivers: [team]
    continue: true
  - match: { model: fraud, kind: FEATURE_DRIFT }
    receivers: [flaky]
    continue: true
  - match: { model: legacy }
    receivers: [refusing]
    continue: true
  - receivers: [limited]
`,
    );
    ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'chdb'), database });
    await migrate(ch, migrations);
  });

  afterAll(async () => {
    await runner?.stop();
    await hooks?.stop();
    await flaky?.stop();
  });

  it('delivers routed alerts as JSON and Slack bodies, grouped, rate limited, through a receiver that fails and recovers', async () => {
    await publish([
      alert('a1', { share_drifted: 0.6 }), // critical
      alert('a2', { event_time: BASE + 120_000 }),
      alert('a3', { event_time: BASE + 180_000, feature: 'country' }),
      alert('a4', { model: 'churn', kind: 'PERFORMANCE', method: 'accuracy', statistic: 0.7, threshold: 0.8 }),
      alert('a5', { model: 'legacy', kind: 'PREDICTION_DRIFT', feature: null, share_drifted: null }),
      alert('a2'), // the same alert twice in one batch
    ]);
    const started = Date.now();
    runner = await start('g1');

    const rows = await eventually(async () => {
      const r = await deliveries();
      return r.length >= 7 ? r : undefined;
    }, 60_000);
    const took = Date.now() - started;

    // oncall: Slack body, one message with the critical fraud alert, the configured header sent.
    const oncall = hooks.on('/oncall');
    expect(oncall).toHaveLength(1);
    expect(oncall[0]!.body.text).toBe('[CRITICAL] `fraud`: 1 FEATURE_DRIFT alert'); // the model a code span
    expect((oncall[0]!.body.blocks as unknown[]).length).toBe(3);
    expect(oncall[0]!.headers['x-token']).toBe('s3cret-token');
    // team: generic JSON, the three fraud drift alerts of one hour as one message (a2 once), churn apart.
    const team = hooks.on('/team');
    expect(team.map(ids)).toEqual([['a1', 'a2', 'a3'], ['a4']]);
    expect(team[0]!.body).toMatchObject({
      version: 1,
      receiver: 'team',
      model: 'fraud',
      kind: 'FEATURE_DRIFT',
      severity: 'critical',
      count: 3,
    });
    expect((team[0]!.body.alerts as Array<{ alert_id: string; evidence: unknown }>)[1]).toMatchObject({
      alert_id: 'a2',
      evidence: { reference_n: 1000, current_n: 800 },
    });
    // limited (burst 2): three groups → the first as is, the other two merged into one digest; none lost.
    const limited = hooks.on('/limited');
    expect(limited.map((r) => [r.body.group, ids(r)])).toEqual([
      [expect.stringMatching(/^fraud\/FEATURE_DRIFT\//), ['a1', 'a2', 'a3']],
      ['digest', ['a4', 'a5']],
    ]);
    // refusing answers 422: recorded failed at once, not retried.
    expect(hooks.on('/refusing')).toHaveLength(1);
    // flaky: 500, 500, refused for 1.5 s, then delivered — and the others were not held up by it.
    const flakyOk = flaky.on('/flaky');
    expect(flakyOk.length).toBe(3);
    expect(flakyOk.map(ids)).toEqual([
      ['a1', 'a2', 'a3'],
      ['a1', 'a2', 'a3'],
      ['a1', 'a2', 'a3'],
    ]);
    expect(flakyBackAt).toBeGreaterThan(0);
    expect(team[1]!.at).toBeLessThan(flakyBackAt);

    const byReceiver = Object.fromEntries(rows.map((r) => [`${r.receiver}:${r.alert_ids.join(',')}`, r]));
    expect(byReceiver['flaky:a1,a2,a3']).toMatchObject({ status: 'delivered', http_status: 200 });
    const flakyRow = byReceiver['flaky:a1,a2,a3']!;
    expect(flakyRow.attempts).toBeGreaterThan(3); // two 500s, at least one refused connection, then 200
    expect(flakyRow.error).toMatch(/ECONNREFUSED|HTTP 500/);
    expect(byReceiver['refusing:a5']).toMatchObject({ status: 'failed', attempts: 1, http_status: 422 });
    expect(byReceiver['refusing:a5']!.error).toContain('HTTP 422: status 422');
    expect(byReceiver['limited:a4,a5']).toMatchObject({ status: 'delivered', group_key: 'digest', attempts: 1 });
    expect(rows.filter((r) => r.status === 'delivered')).toHaveLength(6);
    const metrics = await runner.context.registry.getSingleMetricAsString('driftline_alert_deliveries_total');
    expect(metrics).toMatch(/receiver="refusing",status="failed"[^}]*\} 1$/m);
    console.log('alert-router: first batch delivered in ms', took);
  });

  it('never sends an alert id twice to a receiver, across a restart that replays everything', async () => {
    await runner?.stop();
    runner = undefined;
    const before = { hooks: hooks.received.length, flaky: flaky.received.length };
    await publish([alert('a2'), alert('a7', { event_time: BASE + 240_000 })]); // a2 again, a7 new
    // A new consumer group asked for the history (`earliest`) reads the topic from the beginning: a1..a5 are replayed too.
    runner = await start('g2');
    await eventually(async () =>
      (await deliveries()).some((r) => r.alert_ids.includes('a7') && r.receiver === 'limited') ? true : undefined,
    );
    await eventually(async () => (flaky.received.length > before.flaky ? true : undefined));
    const after = hooks.received.slice(before.hooks);
    // Only a7 is new for team, limited and flaky; refusing refused a5 (recorded failed): not sent again
    // either (before, the lookup read delivered rows only and a new process re-sent it).
    expect(after.filter((r) => r.path === '/team').map(ids)).toEqual([['a7']]);
    expect(after.filter((r) => r.path === '/limited').map(ids)).toEqual([['a7']]);
    expect(after.filter((r) => r.path === '/oncall')).toEqual([]);
    expect(after.filter((r) => r.path === '/refusing')).toEqual([]);
    expect((await deliveries()).filter((r) => r.receiver === 'refusing').map((r) => r.status)).toEqual(['failed']);
    expect(flaky.received.slice(before.flaky).map(ids)).toEqual([['a7']]);
    const metrics = await runner.context.registry.getSingleMetricAsString('driftline_alerts_deduplicated_total');
    expect(metrics).toMatch(/receiver="team"[^}]*\} [1-9]\d*$/m);
  });
});
