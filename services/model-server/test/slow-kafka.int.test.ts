// The model server with Kafka accepting connections and never answering (a hung broker, through a
// proxy that goes silent): readiness while its prediction log refuses, and a SIGTERM's stop.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brokerProxy, eventually, freePort, serviceEnv, uniqueName } from '@driftline/test-support';
import { describe, inject, it, type TestContext } from 'vitest';
import { VIEWS_YAML, writeVersion } from './fixtures.js';
import { deploymentTopics } from './stack-fixtures.js';

const stack = inject('stack');
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
/** The smallest prediction log the server takes: a hundred single predictions fill it. */
const LOG_BUFFER = 100;
/** The documented longest stop (README, Graceful stop): HTTP 10 s, log 10 s, its thread 5 s. */
const STOP_BOUND_MS = 25_000;
/** The prediction log's drain deadline at a stop (README, Graceful stop). */
const LOG_DRAIN_MS = 10_000;
/** A loaded machine's delay in reacting to the signal and logging. */
const DRAIN_SLACK_MS = 4_000;
/** Start-up of a process and its runner's own stop beyond the model server's. */
const PROCESS_SLACK_MS = 5_000;

/** A deployment: model `fraud` v1 promoted on models.v1, served through a Kafka proxy. */
async function deployment(cleanup: Array<() => unknown>) {
  const dir = mkdtempSync(join(tmpdir(), 'model-server-slow-kafka-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const prefix = `${uniqueName('msslow')}.`;
  writeVersion(dir, 'fraud', 'v1', 21, 20, 4);
  await deploymentTopics(stack, prefix, dir).stage('fraud', 'PROMOTED', 'v1');
  const proxy = await brokerProxy(stack.kafkaBrokers[0]!);
  cleanup.push(() => proxy.close());
  writeFileSync(join(dir, 'views.yaml'), VIEWS_YAML);
  const [port, httpPort] = [await freePort(), await freePort()];
  const env = serviceEnv(stack, {
    DRIFTLINE_KAFKA_BROKERS: proxy.broker,
    DRIFTLINE_TOPIC_PREFIX: prefix,
    DRIFTLINE_TOPIC_PARTITIONS: '1',
    DRIFTLINE_HTTP_PORT: String(httpPort),
    DRIFTLINE_LOG_LEVEL: 'warn',
    DRIFTLINE_FEATURE_VIEWS: join(dir, 'views.yaml'),
    DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('msslow'),
    DRIFTLINE_MODEL_SERVER_PORT: String(port),
    DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR: dir,
    DRIFTLINE_MODEL_SERVER_LOG_BUFFER: String(LOG_BUFFER),
    DRIFTLINE_MODEL_SERVER_LOG_WAIT: '200ms',
  });
  const status = (url: string, init?: RequestInit) =>
    fetch(url, { ...init, signal: AbortSignal.timeout(10_000) }).then(
      (r) => r.status,
      () => 0,
    );
  let next = 0;
  /** One prediction, every feature in the request (Redis is never read): its status. */
  const predict = () =>
    status(`http://127.0.0.1:${port}/v1/models/fraud:predict`, {
      method: 'POST',
      body: JSON.stringify({ entity_id: `u${next++}`, features: { f0: 0.5, f1: 1, f2: -0.2, f3: next } }),
    });
  const readyz = () => status(`http://127.0.0.1:${httpPort}/readyz`);
  const healthz = () => status(`http://127.0.0.1:${httpPort}/healthz`);
  const backlog = async () => {
    const text = await fetch(`http://127.0.0.1:${httpPort}/metrics`).then((r) => r.text());
    return Number(/^driftline_model_server_log_backlog(?:\{[^}]*\})? (\d+)$/m.exec(text)?.[1]);
  };
  /** Serving, its log empty (the schema registered, the producer connected), then Kafka goes silent. */
  async function servingThenHung() {
    await eventually(
      async () => ((await readyz()) === 200 && (await predict()) === 200 ? true : undefined),
      90_000,
      200,
    );
    await eventually(async () => ((await backlog()) === 0 ? true : undefined), 30_000, 100);
    proxy.stall();
    // Answered once queued (at most LOG_BUFFER records), then refused after the wait for room.
    let admitted = 0;
    for (let s = await predict(); s === 200; s = await predict()) admitted++;
    return admitted;
  }
  return { env, proxy, predict, readyz, healthz, servingThenHung };
}

/** `driftline run model-server` in a process of its own; `exit` resolves with its code or signal. */
function runServer(env: Record<string, string>, children: ChildProcess[]) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=source', 'services/cli/src/main.ts', 'run', 'model-server'],
    { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code)),
  );
  return { child, exit, output: () => output };
}

/**
 * What a test started, undone once it has finished (its processes killed, then its cleanups in
 * reverse): per test, as the tests run at once, each with a deployment and a server of its own.
 */
function resources(onTestFinished: TestContext['onTestFinished']) {
  const cleanup: Array<() => unknown> = [];
  const children: ChildProcess[] = [];
  onTestFinished(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const fn of cleanup.reverse()) await fn();
  });
  return { cleanup, children };
}

// Each test has topics, a Kafka proxy and a server process of its own: they run at once.
describe.concurrent('model-server with Kafka hung', () => {
  it('is not ready while its full prediction log refuses requests, and ready again once Kafka answers', async ({
    expect,
    onTestFinished,
  }) => {
    // /readyz stayed 200 while every request past the buffer waited and got its 503 (found by a review).
    const { cleanup, children } = resources(onTestFinished);
    const d = await deployment(cleanup);
    const server = runServer(d.env, children);
    const admitted = await d.servingThenHung();
    expect(admitted).toBe(LOG_BUFFER); // one record per prediction
    expect(await d.readyz()).toBe(503);
    expect(await d.predict()).toBe(503); // the refusal it reports
    expect(await d.healthz()).toBe(200); // liveness unchanged: an outage is no reason to restart
    d.proxy.resume();
    // Acknowledged: room again with no request needed (a load balancer sends none meanwhile).
    await eventually(async () => ((await d.readyz()) === 200 ? true : undefined), 30_000, 100);
    expect(await d.predict()).toBe(200);
    server.child.kill('SIGTERM');
    expect(await server.exit).toBe(0);
  }, 180_000);

  it('a SIGTERM stops within its bound with Kafka hung, counting the admitted predictions it could not send as lost', async ({
    expect,
    onTestFinished,
  }) => {
    // It stopped the models.v1 follower first: 87 s with Kafka hung, and the log's drain began only
    // after it, past any supervisor's kill (found by a review).
    const { cleanup, children } = resources(onTestFinished);
    const d = await deployment(cleanup);
    const server = runServer(d.env, children);
    const admitted = await d.servingThenHung();
    expect(admitted).toBe(LOG_BUFFER);
    const signalled = Date.now();
    server.child.kill('SIGTERM');
    const exit = await Promise.race([
      server.exit,
      new Promise<'still running'>((r) => setTimeout(() => r('still running'), STOP_BOUND_MS + PROCESS_SLACK_MS)),
    ]);
    const tookMs = Date.now() - signalled;
    expect(exit, server.output().slice(-3_000)).toBe(0);
    expect(tookMs).toBeLessThan(STOP_BOUND_MS + PROCESS_SLACK_MS);
    // Nothing reached Kafka: every admitted record is counted unacknowledged, once, when the log's drain
    // deadline ran out. No request was in flight, so that drain began at once: its end is not
    // pushed back by the follower's stop (it was, by that stop's whole length).
    const lostLines = server
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{') && /records are lost|they are lost/.test(l))
      .map((l) => JSON.parse(l) as { unacknowledged: number; time: string });
    // Not acknowledged: never sent (`lost`) plus the send without an answer (`unknown`).
    expect(lostLines.map((l) => l.unacknowledged)).toEqual([admitted]);
    const drainEndedMs = Date.parse(lostLines[0]!.time) - signalled;
    expect(drainEndedMs).toBeGreaterThanOrEqual(LOG_DRAIN_MS - 100);
    expect(drainEndedMs).toBeLessThan(LOG_DRAIN_MS + DRAIN_SLACK_MS);
    process.stderr.write(
      `[slow-kafka] with Kafka hung: log drain ended after ${drainEndedMs} ms, exit after ${tookMs} ms\n`,
    );
  }, 240_000);
});
