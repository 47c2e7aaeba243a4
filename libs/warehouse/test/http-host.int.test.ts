// The ClickHouse host (`driftline clickhouse serve`) as its own process, used through the
// warehouse's server connection exactly as a service uses a ClickHouse server.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type ClickHouse,
  createClickHouse,
  type DecisionRow,
  migrate,
  migrations,
  openWarehouse,
  warehouseOn,
} from '../src/index.js';

const fixture = fileURLToPath(new URL('./fixtures/host-process.ts', import.meta.url));
const children: ChildProcess[] = [];

async function startHost(path: string, password = '', maxBody?: number): Promise<{ url: string; child: ChildProcess }> {
  const args = ['--conditions=source', '--import', 'tsx', fixture, path, password];
  if (maxBody !== undefined) args.push(String(maxBody));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0] ?? '') as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`host exited ${code}`)));
  });
  return { url, child };
}

const stop = (child: ChildProcess, signal: NodeJS.Signals) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });

afterAll(async () => {
  for (const c of children) await stop(c, 'SIGKILL');
});

const database = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const server = (url: string, extra: { password?: string; timeoutMs?: number } = {}): Promise<ClickHouse> =>
  createClickHouse({ mode: 'server', url, database: database(), timeoutMs: extra.timeoutMs ?? 20_000, ...extra });

// Concurrent: each test starts hosts of its own (a data directory each, a port of their own); most
// of a test's time is a host process starting (tsx, then the engine).
describe.concurrent('the ClickHouse host over the embedded engine', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-chhost-'));

  it('serves migrations, inserts and parameterized queries; rows survive a SIGKILL of the host', async () => {
    const path = join(dir, 'data');
    const first = await startHost(path);
    const ch = await server(first.url);
    await migrate(ch, migrations);
    await ch.command(`CREATE TABLE ${ch.table('things')} (id String, tags Array(String), n UInt64, at DateTime64(3, 'UTC'))
      ENGINE = ReplacingMergeTree ORDER BY id`);
    // Every character the client escapes in a parameter, at the top level and inside an array.
    const odd = "it's a\\b\tc\nd 'é' {x:String}";
    await ch.insert('things', [
      { id: odd, tags: [odd, 'plain'], n: 2 ** 53 - 1, at: 1_700_000_000_123 },
      { id: 'b', tags: [], n: 1, at: 1_700_000_000_000 },
    ]);
    const rows = await ch.select<{ id: string; tags: string[]; n: number; at: number }>(
      `SELECT id, tags, n, toUnixTimestamp64Milli(at) AS at FROM ${ch.table('things')}
       WHERE id = {id:String} AND has(tags, {tag:String}) AND id IN {ids:Array(String)}`,
      { id: odd, tag: odd, ids: [odd, "o'ther"] },
    );
    expect(rows).toEqual([{ id: odd, tags: [odd, 'plain'], n: 2 ** 53 - 1, at: 1_700_000_000_123 }]);
    const typed = await ch.selectTyped(`SELECT count() AS c FROM ${ch.table('things')}`);
    expect(typed.meta).toEqual([{ name: 'c', type: 'UInt64' }]);
    expect(typed.data).toEqual([{ c: 2 }]);

    // A crash of the host loses nothing it acknowledged; a restart on the directory serves it again.
    await stop(first.child, 'SIGKILL');
    const second = await startHost(path);
    const again = await createClickHouse({ mode: 'server', url: second.url, database: ch.database, timeoutMs: 20_000 });
    expect(await again.select(`SELECT count() AS c FROM ${again.table('things')}`)).toEqual([{ c: 2 }]);
    await again.close();
    await ch.close();
    await stop(second.child, 'SIGTERM');
  });

  it('answers errors as ClickHouse does, so the warehouse classifies them by code', async () => {
    const { url } = await startHost(join(dir, 'errors'));
    const raw = await fetch(`${url}/?query=${encodeURIComponent('SELECT throwIf(1)')}`);
    expect(raw.status).toBe(500);
    expect(raw.headers.get('x-clickhouse-exception-code')).toBe('395');
    expect(await raw.text()).toMatch(
      /^Code: 395\. DB::Exception: .*\(FUNCTION_THROW_IF_VALUE_IS_NON_ZERO\) \(version /s,
    );

    const ch = await server(url);
    await migrate(ch, migrations);
    // A value the engine refuses: poison (SINK_REJECTED), named by code.
    const rejected = await ch
      .insert('drift_progress', [{ stage: 'merge', group_id: 'g', topic: 't', partition: -1, position: 0, offset: 0 }])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(rejected).toMatchObject({ code: 'SINK_REJECTED', retriable: false });
    expect((rejected as Error).message).toMatch(/CANNOT_PARSE_NUMBER \(72\)/);
    // A missing table: the deployment, not the rows (retriable).
    const missing = await ch.select(`SELECT 1 FROM ${ch.table('nowhere')}`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(missing).toMatchObject({ code: 'SINK_UNAVAILABLE', details: { clickhouse: { code: 60 } } });
    await ch.close();
  });

  it('takes a URL as long as ClickHouse does (1 MiB): lookups of thousands of ids answer; a longer URL is refused by name (found by a review)', async () => {
    const { url } = await startHost(join(dir, 'long-urls'));
    const ch = await server(url);
    await migrate(ch, migrations);
    const warehouse = warehouseOn(ch);
    const hex = (i: number) => createHash('sha256').update(String(i)).digest('hex').slice(0, 32);
    // 5,000 alert ids of 32 hex: from 400 on, one lookup was refused 431 and retried for ever.
    const alertIds = Array.from({ length: 5_000 }, (_, i) => hex(i));
    const delivered = alertIds.filter((_, i) => i % 7 === 0);
    const at = '2026-12-05 10:00:00.000';
    await warehouse.alertDeliveries.write([
      {
        delivery_id: 'd1',
        receiver: 'pager',
        alert_ids: delivered,
        group_key: 'g',
        model: 'fraud',
        kind: 'drift',
        severity: 'high',
        status: 'delivered',
        attempts: 1,
        http_status: 200,
        latency_ms: 5,
        error: '',
        first_attempt_at: at,
        finished_at: at,
      },
    ]);
    const outcomes = await warehouse.alertDeliveries.outcomes('pager', alertIds);
    expect([...outcomes.keys()].sort()).toEqual([...delivered].sort());
    // loadStates and recordedAlerts of 5,000 models / alerts (loadStates sent them all in one URL).
    const models = alertIds.map((id) => `model-${id}`);
    const decision = (model: string, alertId: string, seq: number): DecisionRow => ({
      model,
      alert_id: alertId,
      alert_kind: 'drift',
      model_version: 'v1',
      window_start: at,
      window_end: at,
      alert_time: at,
      decision: 'hold',
      fired: 0,
      reason: 'no_signal',
      detail: '',
      signals: [],
      streak: 0,
      request_id: null,
      data_from: null,
      data_to: null,
      seq,
      first: 1,
      state: JSON.stringify({ seq }),
      decided_at: at,
    });
    const decided = [models[3]!, models[4_999]!];
    await warehouse.decisions.write(decided.map((m, i) => decision(m, alertIds[i]!, i + 1)));
    const states = await warehouse.decisions.loadStates(models);
    expect([...states.keys()].sort()).toEqual([...decided].sort());
    const recorded = await warehouse.decisions.recordedAlerts(new Map([[decided[0]!, alertIds]]));
    expect([...(recorded.get(decided[0]!) ?? [])]).toEqual([alertIds[0]]);

    // One parameter of 1,000,000 bytes (over max_query_size, which bounds query text, not parameters).
    const text = 'x'.repeat(1_000_000);
    expect(await ch.select('SELECT length({text:String}) AS n', { text })).toEqual([{ n: text.length }]);
    // Past 1 MiB and the other headers' 16 KiB: refused, not retried, named; the host serves on.
    const refused = await ch.select('SELECT length({text:String}) AS n', { text: 'x'.repeat(1_100_000) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({
      code: 'INTERNAL',
      retriable: false,
      details: { clickhouse: { category: 'rejected', name: 'REQUEST_URI_TOO_LONG' } },
    });
    expect(await ch.select('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await ch.close();
  });

  it('runs interleaved requests one at a time: each gets its own parameters and settings', async () => {
    const { url } = await startHost(join(dir, 'concurrent'));
    const ch = await server(url);
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        ch.select<{ v: string; n: number }>('SELECT {v:String} AS v, {n:UInt32} * 2 AS n', { v: `value-${i}`, n: i }),
      ),
    );
    expect(answers).toEqual(Array.from({ length: 40 }, (_, i) => [{ v: `value-${i}`, n: 2 * i }]));
    // A setting of one request does not leak into the next (the session is shared).
    const quoted = await fetch(`${url}/?output_format_json_quote_64bit_integers=1`, {
      method: 'POST',
      body: 'SELECT toUInt64(5) AS x FORMAT JSONEachRow',
    });
    expect(await quoted.text()).toBe('{"x":"5"}\n');
    const plain = await fetch(url, { method: 'POST', body: 'SELECT toUInt64(5) AS x FORMAT JSONEachRow' });
    expect(await plain.text()).toBe('{"x":5}\n');
    await ch.close();
  });

  it("parses a request's parameters whatever max_query_size the previous request left on the session (found by a review)", async () => {
    const { url } = await startHost(join(dir, 'max-query-size'));
    const ch = await server(url);
    // Another client's valid setting for its own query: the session holds it until the next request.
    for (const max of [2_000, 300_000]) {
      const small = await fetch(`${url}/?max_query_size=${max}`, { method: 'POST', body: 'SELECT 1' });
      expect(await small.text()).toBe('1\n');
      // The next request's SET carries more than that bound (and, for 300 KB, more than the default).
      const ids = Array.from({ length: max / 10 }, (_, i) => `id-${String(i).padStart(6, '0')}`);
      expect(await ch.select('SELECT length({ids:Array(String)}) AS n', { ids })).toEqual([{ n: ids.length }]);
    }
    await ch.close();
  });

  it('refuses requests a web browser sends (Origin, Sec-Fetch-Site): a page could run any SQL (found by a review)', async () => {
    const { url } = await startHost(join(dir, 'browser'));
    for (const headers of [{ origin: 'http://evil.example' }, { 'sec-fetch-site': 'cross-site' }]) {
      const answer = await fetch(url, { method: 'POST', body: 'SELECT 1', headers });
      expect(answer.status).toBe(403);
      expect(answer.headers.get('x-clickhouse-exception-code')).toBe('497');
    }
    const drop = await fetch(`${url}/?query=${encodeURIComponent('DROP TABLE IF EXISTS default.t')}`);
    expect(drop.status).toBe(400);
    expect(drop.headers.get('x-clickhouse-exception-code')).toBe('164');
    const ch = await server(url);
    expect(await ch.select('SELECT 1 AS x')).toEqual([{ x: 1 }]); // programs still get through
    await ch.close();
  });

  it('bounds the body and asks for the password when one is set', async () => {
    const { url } = await startHost(join(dir, 'guarded'), 's3cret', 4096);
    const anonymous = await server(url);
    const refused = await anonymous.select('SELECT 1 AS x').then(
      () => undefined,
      (e: unknown) => e,
    );
    // AUTHENTICATION_FAILED is an environment error: retried, never a dead letter.
    expect(refused).toMatchObject({ code: 'SINK_UNAVAILABLE', details: { clickhouse: { code: 516 } } });
    const ch = await server(url, { password: 's3cret' });
    expect(await ch.select('SELECT 1 AS x')).toEqual([{ x: 1 }]);
    // openWarehouse's check that the URL is ClickHouse: the host passes it, and a refused password
    // is AUTHENTICATION_FAILED by code (retried), not a ConfigError about the URL.
    const config = { mode: 'server', url, database: database(), timeoutMs: 20_000 } as const;
    expect(
      await openWarehouse(config).then(
        () => undefined,
        (e: unknown) => e,
      ),
    ).toMatchObject({ code: 'SINK_UNAVAILABLE', details: { clickhouse: { code: 516 } } });
    const warehouse = await openWarehouse({ ...config, password: 's3cret' });
    await warehouse.progress.save('merge', 'g', 't', 0, { position: 1, offset: 1 });
    expect(await warehouse.progress.load('merge', 'g', 't', 0)).toEqual({ position: 1, offset: 1 });
    await warehouse.close();
    const big = await fetch(`${url}/?user=default&password=s3cret`, {
      method: 'POST',
      body: `SELECT '${'x'.repeat(5000)}'`,
    });
    expect(big.status).toBe(413);
    expect(big.headers.get('x-clickhouse-exception-code')).toBe('307');
    await anonymous.close();
    await ch.close();
  });
});
