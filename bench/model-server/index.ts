import { fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '@driftline/core';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { createKafkaClient, deleteTopics, ensureTopics } from '@driftline/kafka';
import { createRedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { syntheticModelJson } from '@driftline/scoring/bench';
import { median, pooledPercentile, round } from '../stats.js';
import { benchLogThroughput } from './log-throughput.js';
import { openMlserverSideBySide } from './mlserver.js';
import type { ServerProcessSetup } from './server-process.js';
import { cpuSecondsOf, type RepeatResult, runInterleaved, type TimedTarget, timedTarget } from './timed.js';

export interface ModelServerBenchEndpoints {
  readonly kafkaBrokers: readonly string[];
  readonly schemaRegistryUrl: string;
  readonly redisUrl: string;
}

const FEATURES = Array.from({ length: 10 }, (_, i) => `f${i}`);
const ENTITIES = 10_000;

/** Forks server-process.ts; resolves once it serves, with its port and a `stop` (drain, close, exit). */
async function forkServer(
  setup: ServerProcessSetup,
  variant: ServerVariant = {},
): Promise<{ port: number; cpuSeconds(): number; stop(): Promise<number> }> {
  const child = fork(fileURLToPath(new URL('./server-process.ts', import.meta.url)), {
    env: { ...process.env, ...variant.env, BENCH_MODEL_SERVER: JSON.stringify(setup) },
    // BENCH_SERVER_CPU_PROF=<dir>: a V8 CPU profile of the serving process (where its time goes).
    execArgv: [
      ...process.execArgv,
      ...(process.env.BENCH_SERVER_CPU_PROF
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_SERVER_CPU_PROF}`]
        : []),
      // BENCH_SERVER_NODE_FLAGS: more Node/V8 flags for the serving process (--trace-gc, GC tuning).
      ...(process.env.BENCH_SERVER_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
      ...(variant.nodeFlags ?? []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { port: number }).port));
    void exited.then((code) => reject(new Error(`bench model server exited with code ${code} before serving`)));
  });
  let stopped: Promise<number> | undefined;
  return {
    port,
    cpuSeconds: () => cpuSecondsOf({ pid: child.pid ?? -1 }),
    stop() {
      stopped ??= (async () => {
        if (child.exitCode !== null) return 0;
        const left = new Promise<number>((resolve) =>
          child.once('message', (m) => resolve((m as { stopped: number }).stopped)),
        );
        child.send('stop');
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        const result = await Promise.race([left, exited.then(() => 0)]);
        await exited;
        clearTimeout(timer);
        return result;
      })();
      return stopped;
    },
  };
}

interface ServerVariant {
  readonly env?: Readonly<Record<string, string>>;
  readonly nodeFlags?: readonly string[];
}

/** BENCH_VARIANT_ENV (a JSON object of strings) and BENCH_VARIANT_NODE_FLAGS; undefined when neither is set. */
function variantFromEnv(env: NodeJS.ProcessEnv): ServerVariant | undefined {
  const text = env.BENCH_VARIANT_ENV;
  const nodeFlags = env.BENCH_VARIANT_NODE_FLAGS?.split(' ').filter(Boolean);
  if (text === undefined && nodeFlags === undefined) return undefined;
  let vars: unknown = {};
  try {
    if (text !== undefined) vars = JSON.parse(text);
  } catch {}
  if (typeof vars !== 'object' || vars === null || Object.values(vars).some((v) => typeof v !== 'string')) {
    throw new Error(`BENCH_VARIANT_ENV: expected a JSON object of strings, got ${JSON.stringify(text)}`);
  }
  return { env: vars as Record<string, string>, nodeFlags: nodeFlags ?? [] };
}

/** BENCH_MODEL_SERVER_REPEATS: a whole number of repeats from 1 to 50, 3 when unset. */
function repeatsFromEnv(text: string | undefined): number {
  if (text === undefined) return 3;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 50) {
    throw new Error(`BENCH_MODEL_SERVER_REPEATS: expected a whole number from 1 to 50, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** Deterministic feature values of an entity (the same in Redis and inline). */
const valuesOf = (e: number) => Object.fromEntries(FEATURES.map((f, j) => [f, ((e * 31 + j * 17) % 1000) / 250 - 2]));

/**
 * The model server on one keep-alive client, as issue 12's MLServer anchor: a 100-tree depth-6
 * binary:logistic model on 10 float features, every prediction logged to a real predictions.v1.
 * - model_server.single_ms / batch100_ms: features read from Redis (one batch read per request);
 * - model_server.inline.single_ms / batch100_ms: all features in the request (no Redis read).
 * Every shape, MLServer's too, interleaved block by block (timed.ts); p50/p99 of each repeat, medians over
 * `repeats`; the ratios to MLServer per repeat, their median.
 */
export async function benchModelServer(
  endpoints: ModelServerBenchEndpoints,
  options: { repeats?: number; log?: (line: string) => void } = {},
): Promise<Record<string, number | string>> {
  const log = options.log ?? (() => {});
  const repeats = options.repeats ?? repeatsFromEnv(process.env.BENCH_MODEL_SERVER_REPEATS);
  const id = Math.random().toString(36).slice(2, 10);
  const dir = mkdtempSync(join(tmpdir(), 'bench-model-server-'));
  mkdirSync(join(dir, 'bench', 'v1'), { recursive: true });
  writeFileSync(join(dir, 'bench', 'v1', 'model.json'), JSON.stringify(syntheticModelJson(7, 100, 6, 10)));
  writeFileSync(join(dir, 'bench', 'v1', 'meta.json'), JSON.stringify({ features: FEATURES, categories: {} }));
  const viewsYaml = `views:\n  - name: bench\n    entity: id\n    ttl: 1d\n    features:\n${FEATURES.map((f) => `      ${f}: double\n`).join('')}`;
  const views = parseFeatureViewsText(viewsYaml);
  const keyPrefix = `bench-ms-${id}`;
  const writer = createRedisOnlineStore({ url: endpoints.redisUrl, tls: false }, { use: 'online-write', keyPrefix });
  await waitReady(writer.client);
  const now = Date.now();
  const events = Array.from({ length: ENTITIES }, (_, e) =>
    validateFeatureEvent(views, {
      event_id: `e${e}`,
      view: 'bench',
      entity_id: `ent-${e}`,
      event_time: now,
      features: valuesOf(e),
    }),
  );
  for (let i = 0; i < events.length; i += 1_000) await writer.write(planWrites(events.slice(i, i + 1_000)));
  const kafka = createKafkaClient(
    { brokers: endpoints.kafkaBrokers, clientId: 'bench-model-server', ssl: false },
    silentLogger,
  );
  const topic = `bench-ms-${id}.predictions.v1`;
  const logTopic = `bench-ms-${id}.log.predictions.v1`;
  await ensureTopics(kafka, [{ topic, partitions: 1 }]);
  // The server in a process of its own (server-process.ts), as deployed and as MLServer runs.
  const serverSetup: ServerProcessSetup = {
    kafkaBrokers: endpoints.kafkaBrokers,
    schemaRegistryUrl: endpoints.schemaRegistryUrl,
    redisUrl: endpoints.redisUrl,
    keyPrefix,
    viewsYaml,
    artifactDir: dir,
    topic,
    model: 'bench',
    version: 'v1',
  };
  const server = await forkServer(serverSetup);
  // The same server without the prediction log, for the inline shapes: what logging costs.
  const unlogged = await forkServer({ ...serverSetup, log: 'none' });
  // BENCH_VARIANT_ENV='{"NAME":"value"}' / BENCH_VARIANT_NODE_FLAGS='--flag …': a second logged
  // server with that environment or those Node flags, its inline shapes interleaved with the
  // others as variant.* and compared with the logged server's repeat by repeat (variant_vs_logged):
  // a change judged in one run, under the same conditions, not across runs minutes apart.
  const variantSetup = variantFromEnv(process.env);
  const variant = variantSetup === undefined ? undefined : await forkServer(serverSetup, variantSetup);
  // --- MLServer side by side (bench/model-server/mlserver.ts): same model file, same rows, same client.
  const rowOf = (e: number) => FEATURES.map((f) => valuesOf(e)[f]!);
  const mlserver = await openMlserverSideBySide({
    modelJsonPath: join(dir, 'bench', 'v1', 'model.json'),
    dir: join(dir, 'mlserver'),
    single: (i) => rowOf((i * 7919) % ENTITIES),
    batch100: (i) => Array.from({ length: 100 }, (_, k) => rowOf((i * 100 + k * 97) % ENTITIES)),
    log,
  });
  // --- end MLServer
  const result: Record<string, number | string> = {};
  const path = '/v1/models/bench:predict';
  const ours: TimedTarget[] = [];
  try {
    const entity = (i: number) => (i * 7919) % ENTITIES;
    const batchOf = (i: number, inline: boolean) =>
      Array.from({ length: 100 }, (_, k) => {
        const e = (i * 100 + k * 97) % ENTITIES;
        return inline ? { entity_id: `ent-${e}`, features: valuesOf(e) } : { entity_id: `ent-${e}` };
      });
    const shapes = {
      single: (i: number) => JSON.stringify({ entity_id: `ent-${entity(i)}` }),
      batch100: (i: number) => JSON.stringify({ instances: batchOf(i, false) }),
      'inline.single': (i: number) => JSON.stringify({ entity_id: `ent-${entity(i)}`, features: valuesOf(entity(i)) }),
      'inline.batch100': (i: number) => JSON.stringify({ instances: batchOf(i, true) }),
    };
    // The inline shapes again on the server without a prediction log (analysis only).
    const all: Array<[string, (i: number) => string, typeof server]> = [
      ...Object.entries(shapes).map(([n, b]): [string, (i: number) => string, typeof server] => [n, b, server]),
      ['unlogged.inline.single', shapes['inline.single'], unlogged],
      ['unlogged.inline.batch100', shapes['inline.batch100'], unlogged],
      ...(variant === undefined
        ? []
        : ([
            ['variant.inline.single', shapes['inline.single'], variant],
            ['variant.inline.batch100', shapes['inline.batch100'], variant],
          ] satisfies Array<[string, (i: number) => string, typeof server]>)),
    ];
    // BENCH_MODEL_SERVER_SHAPES=inline.batch100,single: only those request shapes (quick looks;
    // MLServer's shape of the same size stays in).
    const only = process.env.BENCH_MODEL_SERVER_SHAPES?.split(',');
    for (const [name, body, target] of all.filter(([n]) => only === undefined || only.includes(n))) {
      // The serving process's CPU (its log thread included), as MLServer's process group's.
      ours.push(
        timedTarget({ name, server: 'model server', port: target.port, path, body, cpuSeconds: target.cpuSeconds }),
      );
    }
    const theirs = mlserver.targets.filter((t) => ours.some((o) => o.name.endsWith(t.name.slice('mlserver'.length))));
    const { results, dropped } = await runInterleaved(
      [...ours, ...theirs],
      { repeats, count: 5_000, blocks: 10 },
      (line) => log(`model-server ${line}`),
    );
    for (const [name, list] of results) {
      const base = name.startsWith('mlserver.') ? name : `model_server.${name}`;
      const key = base.replace(/single$/, 'single_ms').replace(/batch100$/, 'batch100_ms');
      result[`${key}.p50`] = round(median(list.map((x) => x.p50)));
      result[`${key}.p99`] = round(median(list.map((x) => x.p99)));
      result[`${key}.p99_9`] = round(
        pooledPercentile(
          list.flatMap((x) => x.latencies),
          99.9,
        ),
      );
      result[`${key.replace(/_ms$/, '')}_cpu_ms_per_request`] = round(median(list.map((x) => x.cpuMsPerRequest)));
    }
    Object.assign(result, mlserver.keys(dropped));
    // A ÷ B per repeat (the two interleaved: the same conditions), median over repeats.
    const ratio = (key: string, a: string, b: string, metric: 'p99' | 'cpu') => {
      const [mine, theirs] = [results.get(a), results.get(b)];
      if (mine === undefined || theirs === undefined) return;
      const of = (x: RepeatResult) => (metric === 'p99' ? x.p99 : x.cpuMsPerRequest);
      result[key] = round(median(mine.map((x, r) => of(x) / of(theirs[r]!))));
    };
    for (const shape of ['single', 'batch100']) {
      for (const [prefix, metric] of [
        ['inline', 'p99'],
        ['unlogged.inline', 'p99'],
        ['inline', 'cpu'],
      ] as const) {
        ratio(
          `model_server.${prefix}.${shape}_${metric}_vs_mlserver`,
          `${prefix}.${shape}`,
          `mlserver.${shape}`,
          metric,
        );
      }
      for (const metric of ['p99', 'cpu'] as const) {
        ratio(
          `model_server.variant.inline.${shape}_${metric}_vs_logged`,
          `variant.inline.${shape}`,
          `inline.${shape}`,
          metric,
        );
      }
    }
    const ceiling = await benchLogThroughput(
      kafka,
      {
        kafka: { brokers: endpoints.kafkaBrokers, clientId: 'bench-model-server', ssl: false },
        schemaRegistryUrl: endpoints.schemaRegistryUrl,
      },
      logTopic,
      repeats,
      log,
    );
    result['model_server.log.records_per_s'] = ceiling.recordsPerS;
    result['model_server.log.cpu_us_per_record'] = ceiling.cpuUsPerRecord;
    const left = await server.stop();
    if (left > 0) throw new Error(`model server: ${left} prediction records not sent to Kafka`);
  } finally {
    for (const t of ours) t.close();
    await mlserver.close();
    await server.stop();
    await unlogged.stop();
    await variant?.stop();
    await deleteTopics(kafka, [topic, logTopic]).catch(() => {});
    const keys = await writer.client.keys(`${keyPrefix}:*`);
    for (let i = 0; i < keys.length; i += 1_000) await writer.client.unlink(...keys.slice(i, i + 1_000));
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}
