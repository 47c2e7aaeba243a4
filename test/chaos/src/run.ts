// The chaos run: start every service as its own process on a stack of its own, produce the seeded
// stream with hostile records while the fault schedule kills and restarts things, let it drain,
// then check the invariants against the offline computation (check.ts).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SchemaRegistryCodec } from '@driftline/codec';
import {
  committedOffsets,
  createKafkaClient,
  createProducer,
  describeGroup,
  type KafkaClient,
  listTopics,
  topicOffsets,
} from '@driftline/kafka';
import { createRedisClient, redisKeys } from '@driftline/online-store/redis';
import { contracts } from '@driftline/schemas';
import { createDriftlineProducer } from '@driftline/sdk';
import { pauseComponent, pickFreePort, restartComponent, type StackEndpoints } from '@driftline/stack';
import { type CheckResult, checkInvariants, type Names } from './check.js';
import { type Fault, type FaultKind, faultSchedule, type SERVICE_KINDS } from './faults.js';
import { hostileBytes } from './hostile.js';
import { lookAtMerge } from './merge-look.js';
import { type Launcher, ServiceProcess } from './processes.js';
import { MODEL, referenceCsv, Traffic, VERSION, VIEW } from './traffic.js';

export interface ChaosOptions {
  readonly endpoints: StackEndpoints;
  /** The stack's state dir (its components are restarted through it). */
  readonly stackDir: string;
  /** Where the run writes its files, the embedded ClickHouse and the service logs. */
  readonly runDir: string;
  readonly launcher: Launcher;
  /** Traffic duration (faults happen within it). */
  readonly durationMs: number;
  /** Predictions per second (each with a feature event and, 90 %, a label). */
  readonly rate: number;
  readonly seed: number;
  readonly killsPerKind?: number;
  readonly drainTimeoutMs?: number;
  readonly log: (line: string) => void;
}

export interface ChaosReport {
  readonly ok: boolean;
  readonly summary: Record<string, unknown>;
  readonly failures: readonly string[];
}

const WINDOW_MS = 10_000;
/** The label-joiner's performance window. */
const JOINER_WINDOW_MS = 10_000;
const LATENESS_MS = 2_000;

function views(): string {
  return `views:
  - name: ${VIEW}
    entity: user_id
    ttl: 7d
    features:
      amount: double
      country: string
`;
}

function policy(): string {
  return `version: 1
models:
  ${MODEL}:
    signals:
      share_drifted: 0.4
    sustain: 2
    cooldown: 30s
    training_window: 2m
`;
}

async function runOnce(launcher: Launcher, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const child = spawn(launcher.command, [...launcher.args, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`driftline ${args.join(' ')} exited ${code}: ${output.slice(-2000)}`);
}

/** Retries `fn` until it succeeds (an outage of Kafka or the registry is part of the run). */
async function retrying<T>(
  what: string,
  fn: () => Promise<T>,
  log: (l: string) => void,
  timeoutMs = 180_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let attempt = 0;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what}: still failing after ${timeoutMs} ms: ${String(error)}`);
      if (attempt++ % 10 === 0) log(`${what}: ${error instanceof Error ? error.message : String(error)} (retrying)`);
      await sleep(500);
    }
  }
}

interface Sample {
  readonly t: number;
  readonly committed: Map<string, bigint>;
  readonly high: Map<string, bigint>;
}

/** Committed and end offsets of the groups whose commits follow the log (no window holds them). */
async function sample(client: KafkaClient, pairs: ReadonlyArray<readonly [string, string]>): Promise<Sample> {
  const t = Date.now();
  const committed = new Map<string, bigint>();
  const high = new Map<string, bigint>();
  for (const [group, topic] of pairs) {
    const c = await committedOffsets(client, group, topic);
    for (const o of await topicOffsets(client, topic)) {
      const key = `${group}|${topic}|${o.partition}`;
      high.set(key, o.high);
      // No commit yet (-1) on an empty partition is "caught up".
      const at = c.get(o.partition) ?? -1n;
      committed.set(key, at < 0n ? 0n : at);
    }
  }
  return { t, committed, high };
}

/**
 * Recovery of one fault: from its end (restarted process started, component answering its probe,
 * Redis resumed) until the groups it affects — all of them for a stack fault, the materializer's
 * for a materializer, the joiner's for a joiner or the ClickHouse host — have committed up to the end offsets
 * the topics had when the fault ended: the backlog it built is consumed. (The feature API's is the
 * time until it answers again, measured where it restarts.)
 */
function recoverySeconds(samples: readonly Sample[], endedAt: number, groups: readonly string[]): number | undefined {
  const base = samples.find((s) => s.t >= endedAt);
  if (base === undefined) return undefined;
  const keys = [...base.high.keys()].filter((k) => groups.some((g) => k.startsWith(`${g}|`)));
  for (const s of samples) {
    if (s.t < base.t) continue;
    if (keys.every((k) => (s.committed.get(k) ?? 0n) >= (base.high.get(k) ?? 0n))) {
      return Math.max(0, (s.t - endedAt) / 1000);
    }
  }
  return undefined;
}

/** Seconds until every group is Stable with exactly `members` members (undefined: not within the timeout). */
async function untilGroupStable(
  client: KafkaClient,
  groups: readonly string[],
  members: number,
  timeoutMs: number,
): Promise<number | undefined> {
  const begin = Date.now();
  while (Date.now() - begin < timeoutMs) {
    try {
      let stable = true;
      for (const group of groups) {
        const d = await describeGroup(client, group);
        if (d.state !== 'Stable' || d.members !== members) stable = false;
      }
      if (stable) return (Date.now() - begin) / 1000;
    } catch {
      // the broker is restarting
    }
    await sleep(500);
  }
  return undefined;
}

async function untilAnswering(url: string, timeoutMs: number): Promise<number | undefined> {
  const begin = Date.now();
  while (Date.now() - begin < timeoutMs) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      if (res.status === 200) return (Date.now() - begin) / 1000;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  return undefined;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { log } = options;
  const started = Date.now();
  const runId = `chaos${randomBytes(4).toString('hex')}`;
  const prefix = `${runId}.`;
  const dir = join(options.runDir, runId);
  const logDir = join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  writeFileSync(join(dir, 'views.yaml'), views());
  writeFileSync(join(dir, 'policy.yaml'), policy());
  writeFileSync(join(dir, 'reference.csv'), referenceCsv(options.seed, 3_000));
  const featureApiPort = await pickFreePort(); // restarted on it by the faults: the stack's pick
  const featureApiUrl = `http://127.0.0.1:${featureApiPort}`;
  // One ClickHouse host process owns the embedded engine's directory; every service reaches it
  // over HTTP, so the ClickHouse writers run as separate processes (two joiners, two drift-monitors).
  const clickhousePort = await pickFreePort();
  const clickhouseUrl = `http://127.0.0.1:${clickhousePort}`;
  const names: Names = {
    prefix,
    features: `${prefix}features.v1`,
    predictions: `${prefix}predictions.v1`,
    labels: `${prefix}labels.v1`,
    retrain: `${prefix}retrain.v1`,
    materializerGroup: `${prefix}materializer`,
    joinerGroup: `${prefix}joiner`,
    driftGroup: `${prefix}drift`,
    mergeGroup: `${prefix}drift-merge`,
    retrainGroup: `${prefix}retrain`,
    // The drift group is `drift`, not the default: its partials topic is its own (drift-monitor README).
    partials: `${prefix}drift.partials.drift.v1`,
    alerts: `${prefix}alerts.v1`,
  };
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    KAFKAJS_NO_PARTITIONER_WARNING: '1',
    DRIFTLINE_KAFKA_BROKERS: options.endpoints.kafkaBrokers.join(','),
    DRIFTLINE_KAFKA_CLIENT_ID: runId,
    DRIFTLINE_SCHEMA_REGISTRY_URL: options.endpoints.schemaRegistryUrl,
    DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT: '5s',
    DRIFTLINE_REDIS_URL: options.endpoints.redisUrl,
    DRIFTLINE_CLICKHOUSE_URL: clickhouseUrl,
    DRIFTLINE_CLICKHOUSE_TIMEOUT: '15s',
    DRIFTLINE_TOPIC_PREFIX: prefix,
    DRIFTLINE_TOPIC_PARTITIONS: '3',
    DRIFTLINE_HTTP_PORT: '0',
    DRIFTLINE_LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'warn',
    DRIFTLINE_FEATURE_VIEWS: join(dir, 'views.yaml'),
    DRIFTLINE_FEATURE_KEY_PREFIX: runId,
    DRIFTLINE_FEATURE_API_PORT: String(featureApiPort),
    // The services put the topic prefix before these (names.materializerGroup / joinerGroup).
    DRIFTLINE_MATERIALIZER_GROUP: 'materializer',
    DRIFTLINE_JOINER_GROUP: 'joiner',
    DRIFTLINE_JOINER_KEY_PREFIX: `${runId}:joiner:`,
    DRIFTLINE_JOINER_WINDOW: `${JOINER_WINDOW_MS}ms`,
    DRIFTLINE_JOINER_RECOMPUTE_INTERVAL: '2000',
    DRIFTLINE_DRIFT_GROUP: 'drift',
    DRIFTLINE_DRIFT_WINDOW: `${WINDOW_MS}ms`,
    DRIFTLINE_DRIFT_ALLOWED_LATENESS: `${LATENESS_MS}ms`,
    // Longer than the longest stage-one stall the schedule can cause (a kill, a broker restart and
    // a ClickHouse restart overlapping on a loaded machine: recoveries of 72 and 94 s were seen):
    // a source silent longer than this while others report is declared idle and the window
    // completes without it (see test/chaos/README.md, "Drift idle timeout"). Every source has
    // traffic in this run, so the timeout never completes a window by itself.
    DRIFTLINE_DRIFT_IDLE_TIMEOUT: '180s',
    DRIFTLINE_DRIFT_ALERT_SHARE: '0.4',
    DRIFTLINE_RETRAIN_POLICY_FILE: join(dir, 'policy.yaml'),
    DRIFTLINE_RETRAIN_GROUP: 'retrain',
  };

  const make = (kind: string, name: string, args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    new ServiceProcess(kind, name, args, options.launcher, { ...env, ...extraEnv }, logDir);
  const clickhouseHost = make('clickhouse', 'clickhouse-host', ['clickhouse', 'serve'], {
    DRIFTLINE_CLICKHOUSE_PATH: join(dir, 'chdb'),
    DRIFTLINE_CLICKHOUSE_HOST_PORT: String(clickhousePort),
  });
  clickhouseHost.start();
  if ((await untilAnswering(`${clickhouseUrl}/ping`, 60_000)) === undefined) {
    throw new Error(`the ClickHouse host did not answer within 60 s (log in ${logDir})`);
  }

  log(`run ${runId}: reference profile of ${MODEL}/${VERSION}`);
  await runOnce(
    options.launcher,
    ['reference', '--model', MODEL, '--version', VERSION, '--file', join(dir, 'reference.csv')],
    env,
  );

  const service = (kind: (typeof SERVICE_KINDS)[number], instance: number) =>
    make(kind, `${kind}-${instance}`, ['run', kind]);
  // Two instances of every consumer-group service (a kill moves its partitions to the other), one
  // feature API and one retrain-trigger (its decisions are idempotent per request id).
  const processes: Record<(typeof SERVICE_KINDS)[number], ServiceProcess[]> = {
    'feature-materializer': [service('feature-materializer', 1), service('feature-materializer', 2)],
    'feature-api': [service('feature-api', 1)],
    'label-joiner': [service('label-joiner', 1), service('label-joiner', 2)],
    'drift-monitor': [service('drift-monitor', 1), service('drift-monitor', 2)],
    'retrain-trigger': [service('retrain-trigger', 1)],
  };
  const all = Object.values(processes).flat();
  for (const p of all) p.start();

  const client = createKafkaClient({
    brokers: options.endpoints.kafkaBrokers,
    clientId: `${runId}-driver`,
    ssl: false,
  });
  const wanted = [names.features, names.predictions, names.labels, names.retrain, names.partials, names.alerts];
  await retrying(
    'waiting for the services to create their topics',
    async () => {
      const topics = new Set(await listTopics(client));
      const missing = wanted.filter((t) => !topics.has(t));
      if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}`);
    },
    log,
    120_000,
  );
  // A new group starts at the end of its topics: produce only once every group has its partitions,
  // or the first records would be skipped by a group still joining (not a fault of the run).
  // Every instance: a member joining later could take over a partition its peer read uncommitted.
  const groups: Array<readonly [string, number]> = [
    [names.materializerGroup, processes['feature-materializer'].length],
    [names.joinerGroup, processes['label-joiner'].length],
    [names.driftGroup, processes['drift-monitor'].length],
    [names.mergeGroup, processes['drift-monitor'].length],
    [names.retrainGroup, processes['retrain-trigger'].length],
  ];
  await retrying(
    'waiting for every consumer group to be stable',
    async () => {
      for (const [group, expected] of groups) {
        const { state, members } = await describeGroup(client, group);
        if (state !== 'Stable' || members !== expected)
          throw new Error(`${group} is ${state} with ${members} of ${expected} members`);
      }
    },
    log,
    180_000,
  );
  log('services up, topics created, groups stable');

  const producer = await createDriftlineProducer({
    client,
    registry: { url: options.endpoints.schemaRegistryUrl, timeoutMs: 5_000 },
    topicPrefix: prefix,
  });
  const raw = await createProducer(client);
  const codec = new SchemaRegistryCodec({ url: options.endpoints.schemaRegistryUrl, timeoutMs: 5_000 });
  const codecs = {
    feature: codec.forTopic(contracts.feature, names.features),
    prediction: codec.forTopic(contracts.prediction, names.predictions),
    label: codec.forTopic(contracts.label, names.labels),
  };
  const retrainCodec = codec.forTopic(contracts.retrain, names.retrain);
  // Register the schemas before the registry restart can happen (the SDK caches ids after this too).
  for (const c of Object.values(codecs)) await retrying('registering schemas', () => c.register(), log);

  const seconds = Math.max(5, Math.round(options.durationMs / 1000));
  const start = Math.floor(Date.now() / 1000) * 1000 + 1000;
  const traffic = new Traffic({
    seed: options.seed,
    start,
    rate: options.rate,
    entities: Math.max(50, options.rate * 5),
    driftFromSecond: Math.floor(seconds * 0.5),
    hostileShare: 0.01,
  });

  // Faults run beside the traffic; each records when its outage ended.
  const schedule = faultSchedule(options.seed, seconds * 1000, options.killsPerKind ?? 3);
  const faultLog: Array<{ kind: FaultKind; at: number; endedAt: number; target: string; recovery?: number }> = [];
  const faultErrors: string[] = [];
  let stackChain = Promise.resolve();
  const stackOpts = { stateDir: options.stackDir, log: (l: string) => log(`  stack: ${l}`) };
  const runFault = async (fault: Fault) => {
    const at = Date.now();
    const kind = fault.kind.slice(5) as (typeof SERVICE_KINDS)[number];
    if (fault.kind.startsWith('kill:') && kind in processes) {
      const group = processes[kind];
      const target = group[fault.instance % group.length] as ServiceProcess;
      await target.stop('SIGKILL');
      await sleep(fault.downMs);
      target.start();
      const endedAt = Date.now();
      // Measured here: the API answering again; the drift groups (whose commits open windows hold,
      // so offsets say nothing) back to all their members, stable.
      const recovery =
        kind === 'feature-api'
          ? await untilAnswering(`${featureApiUrl}/v1/features/${VIEW}/u-0`, 120_000)
          : kind === 'drift-monitor'
            ? await untilGroupStable(client, [names.driftGroup, names.mergeGroup], group.length, 180_000)
            : undefined;
      faultLog.push({
        kind: fault.kind,
        at,
        endedAt,
        target: target.name,
        ...(recovery === undefined ? {} : { recovery }),
      });
      log(`fault ${fault.kind} ${target.name} (down ${fault.downMs} ms)`);
      return;
    }
    if (fault.kind === 'kill:clickhouse') {
      // The shared ClickHouse dies mid-write: every writer retries, nothing is committed ahead.
      await clickhouseHost.stop('SIGKILL');
      await sleep(fault.downMs);
      clickhouseHost.start();
      const endedAt = Date.now();
      if ((await untilAnswering(`${clickhouseUrl}/ping`, 60_000)) === undefined) {
        throw new Error('the ClickHouse host did not answer after its restart');
      }
      faultLog.push({ kind: fault.kind, at, endedAt, target: 'clickhouse-host' });
      log(`fault ${fault.kind} (down ${fault.downMs} ms)`);
      return;
    }
    // Stack faults one at a time: each gets a recovery of its own.
    stackChain = stackChain.then(async () => {
      const begin = Date.now();
      if (fault.kind === 'pause:redis') {
        await pauseComponent('redis', true, stackOpts);
        await sleep(fault.downMs);
        await pauseComponent('redis', false, stackOpts);
      } else {
        const component =
          fault.kind === 'kill:redis' ? 'redis' : fault.kind === 'restart:kafka' ? 'kafka' : 'schema-registry';
        await restartComponent(component, stackOpts);
      }
      faultLog.push({ kind: fault.kind, at: begin, endedAt: Date.now(), target: fault.kind.split(':')[1] ?? '' });
      log(`fault ${fault.kind} done in ${((Date.now() - begin) / 1000).toFixed(1)} s`);
    });
    await stackChain;
  };
  const faultsDone = Promise.all(
    schedule.map(async (fault) => {
      await sleep(Math.max(0, start + fault.atMs - Date.now()));
      await runFault(fault).catch((error: unknown) => {
        faultErrors.push(`${fault.kind}: ${error instanceof Error ? error.message : String(error)}`);
      });
    }),
  );

  // Offsets sampled through the run, for the recovery times.
  const followed: Array<readonly [string, string]> = [
    [names.materializerGroup, names.features],
    [names.joinerGroup, names.predictions],
    [names.joinerGroup, names.labels],
    [names.retrainGroup, names.alerts],
  ];
  const samples: Sample[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      try {
        samples.push(await sample(client, followed));
      } catch {
        // the broker is down: no sample this time
      }
      await sleep(1_000);
    }
  })();

  // Hostile records go through a plain producer (no validation), one at a time, retried through outages.
  let hostileChain = Promise.resolve();
  let produced = { predictions: 0, features: 0, labels: 0, hostile: 0 };
  let flushing = false;
  for (let s = 0; s < seconds; s++) {
    const due = start + s * 1000;
    if (due > Date.now()) await sleep(due - Date.now());
    const batch = traffic.second(s);
    await producer.publishPrediction(batch.predictions);
    await producer.publishFeatures(batch.features);
    await producer.publishLabel(batch.labels);
    produced = {
      predictions: produced.predictions + batch.predictions.length,
      features: produced.features + batch.features.length,
      labels: produced.labels + batch.labels.length,
      hostile: produced.hostile + batch.hostile.length,
    };
    for (const h of batch.hostile) {
      hostileChain = hostileChain.then(() =>
        retrying(
          `hostile ${h.kind}`,
          async () => raw.send(names[`${h.topic}s`], [{ key: h.key, value: await hostileBytes(h, codecs, start) }]),
          log,
        ),
      );
    }
    // A flush in the background: a broker outage must not stop the clock of the traffic.
    if (!flushing) {
      flushing = true;
      void producer
        .flush()
        .catch(() => {})
        .finally(() => {
          flushing = false;
        });
    }
    if (s % 10 === 0) log(`traffic second ${s}/${seconds}: ${JSON.stringify(produced)}`);
  }
  await hostileChain;
  await retrying('final flush', () => producer.flush(), log);
  await faultsDone;
  // A fault that failed half-way must not leave a service down.
  clickhouseHost.start();
  for (const p of all) p.start();
  log(`traffic done (${JSON.stringify(produced)}), faults done: ${faultLog.length}; draining`);

  const drained = await drain(client, names, options.drainTimeoutMs ?? 180_000, log);
  sampling = false;
  await sampler;

  // The online store is read through the feature API process, before the services stop.
  const checks: CheckResult = await checkInvariants({
    client,
    codecs,
    retrainCodec,
    names,
    featureApiUrl,
    viewsFile: join(dir, 'views.yaml'),
    windowMs: WINDOW_MS,
    joinerWindowMs: JOINER_WINDOW_MS,
    scoreTalliesWaiting: async () => {
      const redis = createRedisClient({ url: options.endpoints.redisUrl, tls: false }, 'tooling', {
        name: 'driftline-chaos-check',
      });
      try {
        const keys = redisKeys(`${runId}:joiner:`);
        return (await redis.scard(keys.tallies)) + (await redis.exists(keys.tallyFlight));
      } finally {
        redis.disconnect();
      }
    },
    latenessMs: LATENESS_MS,
    // All at once: each finishes its batch, commits and leaves its groups on its own.
    stopServices: async () => {
      await Promise.all(all.map((p) => p.stop('SIGTERM')));
    },
    clickhouseUrl,
    referenceModel: { model: MODEL, version: VERSION },
    log,
  });
  await clickhouseHost.stop('SIGTERM');
  await producer.close().catch(() => {});
  await raw.disconnect().catch(() => {});

  const affected = (kind: FaultKind): string[] =>
    kind === 'kill:feature-materializer'
      ? [names.materializerGroup]
      : kind === 'kill:label-joiner' || kind === 'kill:clickhouse'
        ? [names.joinerGroup]
        : kind === 'kill:retrain-trigger'
          ? [names.retrainGroup]
          : [names.materializerGroup, names.joinerGroup];
  const measuredAtFault = new Set<FaultKind>(['kill:feature-api', 'kill:drift-monitor']);
  const recoveries = faultLog.map((f) => ({
    kind: f.kind,
    seconds: measuredAtFault.has(f.kind) ? f.recovery : recoverySeconds(samples, f.endedAt, affected(f.kind)),
  }));
  const unrecovered = recoveries.filter((r) => r.seconds === undefined);
  const faultsByKind: Record<string, number> = {};
  for (const f of faultLog) faultsByKind[f.kind] = (faultsByKind[f.kind] ?? 0) + 1;
  const killsByServiceKind: Record<string, number> = {};
  for (const f of faultLog) {
    if (f.kind.slice(5) in processes) {
      killsByServiceKind[f.kind.slice(5)] = (killsByServiceKind[f.kind.slice(5)] ?? 0) + 1;
    }
  }
  // A service that exits by itself is restarted (as a supervisor would) and reported; exit 78 says
  // "configuration error, do not restart" and must never come from an outage.
  const exits = all.flatMap((p) => p.unexpectedExits);
  const configExits = exits.filter((e) => e.code === 78);
  const invariants: Record<string, boolean> = {
    ...checks.invariants,
    drained,
    faults_injected: faultErrors.length === 0,
    every_fault_recovered: unrecovered.length === 0,
    no_config_exit: configExits.length === 0,
  };
  const failures = [
    ...checks.failures,
    ...(drained ? [] : ['the pipeline did not drain within the timeout']),
    ...faultErrors.map((e) => `fault failed: ${e}`),
    ...unrecovered.map((r) => `no recovery measured after ${r.kind}`),
    ...configExits.map((e) => `${e.name} exited 78 (configuration error) during an outage`),
  ];
  const summary = {
    run: runId,
    seed: options.seed,
    duration_s: seconds,
    rate: options.rate,
    events: produced.predictions + produced.features + produced.labels,
    events_by_topic: { predictions: produced.predictions, features: produced.features, labels: produced.labels },
    hostile_records: produced.hostile,
    faults_injected: faultsByKind,
    kills_by_service_kind: killsByServiceKind,
    ...checks.counts,
    max_recovery_seconds:
      recoveries.length === 0 ? null : Math.round(Math.max(...recoveries.map((r) => r.seconds ?? Infinity)) * 10) / 10,
    recovery_seconds_by_fault: recoveries.map(
      (r) => `${r.kind}:${r.seconds === undefined ? 'never' : r.seconds.toFixed(1)}`,
    ),
    service_exits: exits.map((e) => `${e.name}:${e.code}`),
    invariants,
    wall_seconds: Math.round((Date.now() - started) / 1000),
    logs: logDir,
  };
  return { ok: Object.values(invariants).every(Boolean), summary, failures };
}

/**
 * Waits until every group has consumed everything it can: the log-following groups at the end
 * offsets, the merge stage with nothing pinned (lookAtMerge; a window some source has not reported
 * yet holds its commit on purpose), and nothing produced for a few seconds on the topics those
 * groups follow (dead letters, alerts). The partials topic is left out of that quiet: stage one's
 * idle sources announce every window, for as long as the services run.
 */
async function drain(client: KafkaClient, names: Names, timeoutMs: number, log: (l: string) => void): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const pairs: Array<readonly [string, string]> = [
    [names.materializerGroup, names.features],
    [names.joinerGroup, names.predictions],
    [names.joinerGroup, names.labels],
    [names.retrainGroup, names.alerts],
  ];
  let quietSince: number | undefined;
  let lastTotal = -1n;
  while (Date.now() < deadline) {
    try {
      const s = await sample(client, pairs);
      let lag = 0n;
      let total = 0n;
      const behind: string[] = [];
      for (const [key, high] of s.high) {
        total += high;
        const gap = high - (s.committed.get(key) ?? 0n);
        if (gap > 0n) {
          lag += gap;
          behind.push(`${key.replace(names.prefix, '').replace(names.prefix, '')}: ${gap}`);
        }
      }
      // Its read of the partials bounded by the time left, a failure said (the catch below is silent).
      let mergePinned: string[] = [];
      if (lag === 0n) {
        const left = Math.max(1_000, deadline - Date.now());
        mergePinned = await lookAtMerge(client, names.mergeGroup, names.partials, left).then(
          (look) => look.pinned,
          (error: unknown) => [`partials not read: ${error instanceof Error ? error.message : String(error)}`],
        );
      }
      if (lag === 0n && mergePinned.length === 0 && total === lastTotal) {
        quietSince ??= Date.now();
        if (Date.now() - quietSince >= 5_000) return true;
      } else {
        quietSince = undefined;
      }
      lastTotal = total;
      if (lag > 0n) log(`draining: lag ${lag} (${behind.slice(0, 4).join(', ')})`);
      else if (mergePinned.length > 0) log(`draining: merge ${mergePinned.slice(0, 2).join('; ')}`);
    } catch {
      // broker still coming back
    }
    await sleep(1_000);
  }
  return false;
}
