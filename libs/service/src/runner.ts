import { setTimeout as sleep } from 'node:timers/promises';
import {
  ConfigError,
  DriftlineError,
  type Env,
  envField,
  formatDuration,
  isRetriable,
  type Logger,
  parseEnv,
} from '@driftline/core';
import { kafkaCredentialsError } from '@driftline/kafka';
import {
  createLogger,
  createMetricsRegistry,
  type Registry as MetricsRegistry,
  startObservabilityServer,
} from '@driftline/observability';
import {
  type Backend,
  backendsOf,
  describeUnreachable,
  type UnreachableBackend,
  unreachableBackends,
} from './backend-reach.js';
import { baseEnvShape, type CommonConfig, toCommonConfig } from './common-config.js';
import { createSharedResources, type SharedResources } from './context.js';
import { rejectSharedPorts, rejectUnknownDriftlineEnv } from './env-names.js';
import { exitOnConfigError, type FatalHandler } from './fatal.js';
import { listenError } from './listen-error.js';
import { type ResourceConfigs, resolveResourceConfigs } from './resource-config.js';
import type { RunningService, ServiceContext, ServiceDefinition, ServiceNeed } from './service.js';

export interface RunnerOptions {
  readonly services: ReadonlyArray<ServiceDefinition<never, unknown>>;
  readonly env?: Env;
  readonly logger?: Logger;
  /** Every service of the binary: their variables are known even when they are not started. */
  readonly knownServices?: ReadonlyArray<ServiceDefinition<never, unknown>>;
  /** Aborting it ends start-up retries at once (a SIGTERM while a backend is still down). */
  readonly signal?: AbortSignal;
  /**
   * What `ctx.fatal` does with a configuration error found after start-up, called once (the first):
   * by default one error line naming the field and exit 78 at once, no graceful stop (see
   * `exitOnConfigError`). Tests and embedders pass their own; the services are not stopped for it.
   */
  readonly onFatal?: FatalHandler;
  /**
   * Internal, for tests: the start-up probes' bounds (see `awaitAttempt`), each absent one its
   * production value. Not a setting: no variable sets it.
   */
  readonly startupProbes?: {
    /** How often the backends are probed past the timeout (STARTUP_PROBE_INTERVAL_MS). */
    readonly intervalMs?: number;
    /** Bound on each probe's TCP connection (STARTUP_PROBE_TIMEOUT_MS). */
    readonly timeoutMs?: number;
    /** Bound on a Kafka probe's answer, from its connection (STARTUP_PROBE_ANSWER_TIMEOUT_MS). */
    readonly answerTimeoutMs?: number;
    /** How long a backend is found unreachable before the attempt is cut (STARTUP_REFUSAL_GRACE_MS). */
    readonly refusalGraceMs?: number;
  };
}

export interface Runner {
  /** A context allowing every resource the started services need (for tools, tests and the demo). */
  readonly context: ServiceContext;
  readonly httpPort: number;
  ready(): boolean;
  stop(): Promise<void>;
}

/** Everything the runner reads from the environment, parsed and checked. */
export interface RunnerEnv {
  readonly common: CommonConfig;
  readonly configs: ResourceConfigs;
  /** `configure(env)` of each started service, in order. */
  readonly serviceConfigs: readonly unknown[];
}

/**
 * The runner's first step, before anything connects: rejects unknown DRIFTLINE_* variables, parses
 * the common and resource variables and configures each started service. Throws a ConfigError
 * naming the variable.
 */
export function parseRunnerEnv(options: Omit<RunnerOptions, 'logger'>): RunnerEnv {
  const env = options.env ?? process.env;
  const shapes = options.services.map((s) => s.envShape as Record<string, never>);
  const knownShapes = (options.knownServices ?? options.services).map((s) => s.envShape as Record<string, never>);
  // `driftline clickhouse serve` reads DRIFTLINE_CLICKHOUSE_HOST_*: the CLI checks those names
  // (one env file can serve both), this library does not know them.
  rejectUnknownDriftlineEnv([...shapes, ...knownShapes], env, ['DRIFTLINE_CLICKHOUSE_HOST_']);
  const base = parseEnv(baseEnvShape, env);
  const common = toCommonConfig(base);
  const configs = resolveResourceConfigs(env, options.services);
  const serviceEnvs = shapes.map((shape) => parseEnv(shape, env));
  rejectSharedPorts([base, ...serviceEnvs]);
  const serviceConfigs = options.services.map((s, i) => s.configure(serviceEnvs[i] as never));
  return { common, configs, serviceConfigs };
}

const STARTUP_RETRY_INITIAL_MS = 1_000;
const aborted = (signal: AbortSignal | undefined) => signal?.aborted === true;
const STARTUP_RETRY_MAX_MS = 15_000;

/** One start-up attempt: every service in order; on failure the started ones are stopped again. */
async function startServices(
  options: RunnerOptions,
  common: CommonConfig,
  configs: ResourceConfigs,
  serviceConfigs: readonly unknown[],
  logger: Logger,
  registry: MetricsRegistry,
  fatal: FatalHandler,
): Promise<{ resources: SharedResources; running: Array<{ name: string; service: RunningService }> }> {
  const resources = createSharedResources({ common, configs, logger, registry, fatal });
  const running: Array<{ name: string; service: RunningService }> = [];
  try {
    for (const [i, definition] of options.services.entries()) {
      const scoped = resources.context(
        new Set(definition.needs),
        logger.child({ component: definition.name }),
        definition.name,
      );
      const service = await definition.start(scoped, serviceConfigs[i]);
      running.push({ name: definition.name, service });
      // `component`, as on the service's own lines: `service` is the logger's base (one key per line).
      logger.info({ component: definition.name }, 'service started');
    }
  } catch (error) {
    for (const r of running.reverse()) await r.service.stop().catch(() => {});
    await resources.close();
    throw error;
  }
  return { resources, running };
}

/** Bound on the TCP connection of each probe of a backend once DRIFTLINE_STARTUP_TIMEOUT has passed. */
const STARTUP_PROBE_TIMEOUT_MS = 2_000;
/**
 * Bound on a Kafka probe's answer (not TLS or SASL: an ApiVersions request), from its connection.
 * Its own and longer: with the connection's 2 s, a loaded broker answering in 2.3 s cut a healthy
 * start at the timeout + 12 s (found by a review). Well under kafkajs' 30 s request timeout, which
 * a silent broker makes each of a start's requests wait.
 */
const STARTUP_PROBE_ANSWER_TIMEOUT_MS = 5_000;
/** How often the backends are probed while an attempt runs past DRIFTLINE_STARTUP_TIMEOUT. */
const STARTUP_PROBE_INTERVAL_MS = 1_000;
/**
 * How long past DRIFTLINE_STARTUP_TIMEOUT a backend must be unreachable (take no connection; Kafka:
 * or answer no request), at every probe, before the attempt in flight is cut: a broker that is
 * restarting at the deadline (or a `0` timeout with the stack a few seconds from up) is ridden out
 * by kafkajs' own retries, as before the bound.
 */
const STARTUP_REFUSAL_GRACE_MS = 10_000;
/**
 * How many probes in a row must find a backend reachable before its count of
 * STARTUP_REFUSAL_GRACE_MS starts over: one was enough, and a crash-looping broker (up 400 ms of
 * every 3 s) was never cut (194 s, a warning every 3 s; found by a review). It is the rule for a
 * backend that takes no connection; one that takes the connection and then fails (a Kafka silent,
 * closing, not Kafka) is cut only when no probe found it reachable for the whole grace (see
 * `awaitAttempt`).
 */
const STARTUP_REACHABLE_PROBES_TO_RESET = 3;

/** The start-up probes' bounds, in ms: `RunnerOptions.startupProbes` or the constants above. */
type StartupProbes = Required<NonNullable<RunnerOptions['startupProbes']>>;

type Started = Awaited<ReturnType<typeof startServices>>;
type AttemptOutcome =
  | { readonly kind: 'started'; readonly up: Started }
  | { readonly kind: 'failed'; readonly error: unknown }
  | { readonly kind: 'cut'; readonly unreachable: readonly UnreachableBackend[] };

/**
 * The `fatal` of one start-up attempt: the runner's, until the attempt is cut. A cut attempt runs
 * on (kafkajs cannot be cancelled), and a check of its finding a wrong setting later (a Redis
 * database refused) ended an embedder's process after startRunner had rejected (found by a review).
 */
function attemptFatal(fatal: FatalHandler, logger: Logger): { fatal: FatalHandler; cut: () => void } {
  let cut = false;
  return {
    fatal: (error) => {
      if (!cut) return fatal(error);
      logger.debug({ err: error }, 'a start-up attempt given up on found a configuration error: ignored');
    },
    cut: () => {
      cut = true;
    },
  };
}

/** `promise`'s value, or undefined once `until` (epoch ms) has passed. */
async function by<T>(promise: Promise<T>, until: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), Math.max(0, until - Date.now()));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits for one start-up attempt. Until `deadline` (DRIFTLINE_STARTUP_TIMEOUT from the start) it
 * just waits; past it the backends are probed every STARTUP_PROBE_INTERVAL_MS (the next probe at
 * once when one took longer: a Kafka's answer may take STARTUP_PROBE_ANSWER_TIMEOUT_MS), and the
 * attempt is cut ('cut') when a backend found unreachable STARTUP_REFUSAL_GRACE_MS ago still is
 * (its count starts over once STARTUP_REACHABLE_PROBES_TO_RESET probes in a row found it
 * reachable; one warning per backend and attempt). Unreachable: no TCP connection, or, for a Kafka
 * not on TLS or SASL, no Kafka answer to an ApiVersions request within the answer's bound (a hung
 * or stopped broker still takes connections: the attempt ran 254 s, topic creation's 8 requests
 * each waiting kafkajs' 30 s). A backend that took the connection and then failed is cut only when
 * no probe has found it reachable for the grace either: a Kafka answer is proof of life, and a
 * broker that answers only some probes (loaded; behind a load balancer with one backend gone) cut
 * healthy starts (found by a review). While every backend is reachable the attempt is never cut: a
 * start's own work (the trainer's first venv install, allowed 15 min; a migration; a catch-up) may
 * take as long as it takes. A cut attempt cannot be cancelled (kafkajs retries on its own):
 * whatever it starts later is stopped and closed as soon as it has started.
 */
async function awaitAttempt(
  attempt: Promise<Started>,
  deadline: number,
  backends: readonly Backend[],
  probes: StartupProbes,
  logger: Logger,
): Promise<AttemptOutcome> {
  const settled: Promise<AttemptOutcome> = attempt.then(
    (up) => ({ kind: 'started', up }),
    (error: unknown) => ({ kind: 'failed', error }),
  );
  const early = await by(settled, deadline);
  if (early !== undefined || backends.length === 0) return early ?? settled;
  // Per backend (its variable): when the probes began to find it unreachable, how many in a row
  // have found it reachable since, and when the last probe that found it reachable began.
  const downSince = new Map<string, number>();
  const upStreak = new Map<string, number>();
  const reachableAt = new Map<string, number>();
  const warned = new Set<string>();
  // How long `b`, unreachable at the probe begun at `probeAt`, has been down by the rules above.
  const downFor = (b: UnreachableBackend, probeAt: number) => {
    const since = downSince.get(b.variable) ?? probeAt;
    const alive = b.tookConnection ? reachableAt.get(b.variable) : undefined;
    return probeAt - Math.max(since, alive ?? since);
  };
  const bounds = { connectMs: probes.timeoutMs, answerMs: probes.answerTimeoutMs };
  for (;;) {
    const probeAt = Date.now();
    const probed = await Promise.race([
      settled,
      unreachableBackends(backends, bounds).then((unreachable) => ({ kind: 'probed' as const, unreachable })),
    ]);
    if (probed.kind !== 'probed') return probed;
    const down = new Set(probed.unreachable.map((b) => b.variable));
    for (const { variable } of backends) {
      if (down.has(variable)) continue;
      reachableAt.set(variable, probeAt);
      if (!downSince.has(variable)) continue;
      const streak = (upStreak.get(variable) ?? 0) + 1;
      upStreak.set(variable, streak);
      if (streak >= STARTUP_REACHABLE_PROBES_TO_RESET) {
        downSince.delete(variable);
        upStreak.delete(variable);
      }
    }
    for (const b of probed.unreachable) {
      upStreak.delete(b.variable);
      if (!downSince.has(b.variable)) downSince.set(b.variable, probeAt);
      if (warned.has(b.variable)) continue;
      warned.add(b.variable);
      logger.warn(
        { backend: describeUnreachable(b), variable: b.variable, giveUpInMs: probes.refusalGraceMs },
        'start-up still under way past DRIFTLINE_STARTUP_TIMEOUT and a backend is not reachable: it ends unless the backend comes back',
      );
    }
    // Cut only while one is down: the error names what is unreachable now.
    if (probed.unreachable.some((b) => downFor(b, probeAt) >= probes.refusalGraceMs)) {
      void settled.then(async (late) => {
        if (late.kind !== 'started') return;
        for (const r of [...late.up.running].reverse()) await r.service.stop().catch(() => {});
        await late.up.resources.close().catch(() => {});
      });
      return { kind: 'cut', unreachable: probed.unreachable };
    }
    const done = await by(settled, probeAt + probes.intervalMs);
    if (done !== undefined) return done;
  }
}

/**
 * A start-up that gave up on a backend: past DRIFTLINE_STARTUP_TIMEOUT with the start still waiting
 * for one, or retried until then. Retriable (the backend may come back): the CLI exits 69 with its
 * message, one line naming the backend, its address and why.
 */
export class StartupTimeoutError extends DriftlineError {
  constructor(message: string, cause: unknown) {
    super('TIMEOUT', message, { retriable: true, ...(cause === undefined ? {} : { cause }) });
    this.name = 'StartupTimeoutError';
  }
}

function startupTimedOut(
  waitedMs: number,
  timeoutMs: number,
  lastFailure: unknown,
  unreachable: readonly UnreachableBackend[],
): StartupTimeoutError {
  const gaveUp = `start-up gave up after ${Math.round(waitedMs / 1000)}s (DRIFTLINE_STARTUP_TIMEOUT=${timeoutMs === 0 ? '0' : formatDuration(timeoutMs)})`;
  if (unreachable.length > 0) {
    const variables = [...new Set(unreachable.map((b) => b.variable))].join(', ');
    return new StartupTimeoutError(
      `${unreachable.map(describeUnreachable).join('; ')}: not reachable, ${gaveUp} — check ${variables} and that ${unreachable.length === 1 ? 'it is' : 'they are'} running`,
      lastFailure,
    );
  }
  const message = lastFailure instanceof Error ? lastFailure.message : String(lastFailure);
  return new StartupTimeoutError(`${message}; ${gaveUp}`, lastFailure);
}

/**
 * Starts any subset of services in one process, sharing clients. Every variable is parsed once,
 * here, before anything connects: a wrong or unknown DRIFTLINE_* variable, or a missing one that a
 * started service needs (e.g. DRIFTLINE_KAFKA_BROKERS for a Kafka consumer), fails start-up with
 * its name in the message. Nothing is connected for resources no started service needs.
 */
export async function startRunner(options: RunnerOptions): Promise<Runner> {
  const { common, configs, serviceConfigs } = parseRunnerEnv(options);

  const logger = options.logger ?? createLogger({ service: 'driftline', level: common.logLevel });
  // Its bounded metrics warn of a series cap through the runner's logger, as every other line.
  const registry = createMetricsRegistry({
    service: options.services.map((s) => s.name).join('+') || 'driftline',
    logger,
  });
  // Served before the services start: a start-up that waits for a backend
  // (DRIFTLINE_STARTUP_TIMEOUT) answered no probe at all, and a liveness probe killed the process
  // long before the wait ended (found by a review). Live while starting, not ready.
  const started = Date.now();
  // The runner owns the exit: a service that finds its configuration wrong after start (a refused
  // Redis database) hands it here, also during a start-up attempt. Once: the services of `all`
  // each check their database, and one line says it.
  const onFatal = options.onFatal ?? exitOnConfigError();
  let fatalCalled = false;
  const fatal: FatalHandler = (error) => {
    if (fatalCalled) return;
    fatalCalled = true;
    onFatal(error);
  };
  let resources: SharedResources | undefined;
  let running: Array<{ name: string; service: RunningService }> = [];
  // Liveness fails on a stalled partition (lag, and no commit for DRIFTLINE_STALL_TIMEOUT, not
  // backing off on a failing sink): a restart hands its partitions to another member and rebuilds
  // what may be wedged here; readiness implies it. So does a service that says it is broken for
  // good (a worker thread it needs exited).
  const broken = () => running.filter((r) => r.service.healthy?.() === false).map((r) => r.name);
  // Live while starting, until the runner gives up (awaitAttempt's rule): it went 503 at the
  // timeout and as much grace (at most 1 min) while a healthy start went on (the trainer's first
  // venv install, allowed 15 min), and a liveness probe would kill it; with `0`, at once.
  // Readiness says the start is not done.
  const healthy = () =>
    resources === undefined ||
    (resources.stalls().length === 0 && resources.crashedConsumers() === 0 && broken().length === 0);
  const ready = () => resources !== undefined && healthy() && running.every((r) => r.service.ready());
  const observability = {
    registry,
    logger,
    health: {
      healthy,
      ready,
      problems: () => {
        if (resources === undefined) return { starting: options.services.map((s) => s.name) };
        const stalled = resources.stalls();
        const unready = running.filter((r) => !r.service.ready()).map((r) => r.name);
        const unhealthy = broken();
        const crashed = resources.crashedConsumers();
        return {
          ...(stalled.length > 0 ? { stalled } : {}),
          ...(crashed > 0 ? { crashedConsumers: crashed } : {}),
          ...(unready.length > 0 ? { unready } : {}),
          ...(unhealthy.length > 0 ? { unhealthy } : {}),
        };
      },
    },
    port: common.http.port,
    host: common.http.host,
  };
  const http = await startObservabilityServer(observability).catch((error: unknown) => {
    throw listenError(
      error,
      { port: 'DRIFTLINE_HTTP_PORT', host: 'DRIFTLINE_HTTP_HOST' },
      observability.host,
      observability.port,
    );
  });
  // A backend that is unreachable at start-up (a broker restarting, a registry not up yet) is
  // waited for, with backoff, for DRIFTLINE_STARTUP_TIMEOUT: exiting would make a supervisor's
  // restart loop out of an ordinary outage. A config error, or anything not retriable, exits at once.
  // Past the timeout an attempt in flight is cut only for a backend unreachable for
  // STARTUP_REFUSAL_GRACE_MS (see awaitAttempt; Kafka: also one that takes connections and answers
  // no request): one attempt against a refused broker took 211 s by itself (kafkajs' connection
  // retries inside each of topic creation's 8 attempts), far past the 2 minutes, and then exited 1
  // with kafkajs' line; against a broker that answered nothing, 253 s.
  const backends = backendsOf(configs);
  const probes: StartupProbes = {
    intervalMs: options.startupProbes?.intervalMs ?? STARTUP_PROBE_INTERVAL_MS,
    timeoutMs: options.startupProbes?.timeoutMs ?? STARTUP_PROBE_TIMEOUT_MS,
    answerTimeoutMs: options.startupProbes?.answerTimeoutMs ?? STARTUP_PROBE_ANSWER_TIMEOUT_MS,
    refusalGraceMs: options.startupProbes?.refusalGraceMs ?? STARTUP_REFUSAL_GRACE_MS,
  };
  const giveUp = (lastFailure: unknown, unreachable: readonly UnreachableBackend[]) =>
    startupTimedOut(Date.now() - started, common.startupTimeoutMs, lastFailure, unreachable);
  let up: Awaited<ReturnType<typeof startServices>>;
  try {
    let lastFailure: unknown;
    for (let attempt = 1; ; attempt++) {
      const attemptOwn = attemptFatal(fatal, logger);
      const outcome = await awaitAttempt(
        startServices(options, common, configs, serviceConfigs, logger, registry, attemptOwn.fatal),
        started + common.startupTimeoutMs,
        backends,
        probes,
        logger,
      );
      if (outcome.kind === 'started') {
        up = outcome.up;
        break;
      }
      if (outcome.kind === 'cut') {
        attemptOwn.cut();
        throw giveUp(lastFailure, outcome.unreachable);
      }
      const error = outcome.error;
      // Kafka refusing the SASL login at start-up is the configuration's (exit 78, one line naming
      // DRIFTLINE_KAFKA_SASL_*), wherever it was met: topic creation, the producer, the consumer.
      // It had no variable named (a topic creation "failed"); met later, it is held (README of libs/kafka).
      const refused = configs.kafka === undefined ? undefined : kafkaCredentialsError(error, configs.kafka);
      if (refused !== undefined) throw refused;
      const delay = Math.min(STARTUP_RETRY_MAX_MS, STARTUP_RETRY_INITIAL_MS * 2 ** (attempt - 1));
      const left = common.startupTimeoutMs - (Date.now() - started);
      if (!isRetriable(error) || aborted(options.signal)) throw error;
      if (delay > left)
        throw giveUp(
          error,
          await unreachableBackends(backends, { connectMs: probes.timeoutMs, answerMs: probes.answerTimeoutMs }),
        );
      lastFailure = error;
      logger.warn(
        { err: error, attempt, retryInMs: delay, giveUpInMs: left },
        'start-up failed on an unreachable backend: retrying (DRIFTLINE_STARTUP_TIMEOUT)',
      );
      await sleep(delay, undefined, options.signal === undefined ? {} : { signal: options.signal }).catch(() => {});
      if (aborted(options.signal)) throw error;
    }
  } catch (error) {
    await http.close();
    throw error;
  }
  running = up.running;
  resources = up.resources;
  const shared = resources;
  const context = shared.context(new Set<ServiceNeed>(options.services.flatMap((s) => s.needs)), logger, 'the runner');
  // Together: each stop is bounded (a consumer's at 10 s), but one after another the services of
  // `all` with a hung broker took a bound each, far past a supervisor's grace (found by a review).
  const stopServices = async () => {
    await Promise.all(
      running.map((r) =>
        r.service.stop().catch((error: unknown) => logger.error({ err: error, component: r.name }, 'stop failed')),
      ),
    );
    await shared.close();
  };
  let stopping: Promise<void> | undefined;
  return {
    context,
    httpPort: http.port,
    ready,
    stop() {
      stopping ??= (async () => {
        await stopServices();
        await http.close();
      })();
      return stopping;
    },
  };
}

/**
 * Picks services by name from a comma list (`all` or empty = every service); a problem names
 * `field`: the variable, or the command-line argument the list came from.
 */
export function selectServices<T extends { name: string }>(
  all: readonly T[],
  names: string | undefined,
  field = 'DRIFTLINE_SERVICES',
): T[] {
  if (names === undefined || names.trim() === '' || names.trim() === 'all') return [...all];
  if (names.split(',').every((n) => n.trim() === '')) {
    // `,` or `, ,`: no name at all. It ran no service, for ever, looking healthy.
    throw new ConfigError(field, `names no service (known: ${all.map((s) => s.name).join(', ')})`);
  }
  // The rule of every list variable: an empty item or a name twice is a typo or a paste.
  const parsed = envField.list().safeParse(names);
  if (!parsed.success) throw new ConfigError(field, parsed.error.issues[0]?.message ?? 'is not a comma-separated list');
  const wanted = parsed.data;
  const unknown = wanted.filter((n) => !all.some((s) => s.name === n));
  if (unknown.length > 0) {
    throw new ConfigError(field, `unknown service ${unknown.join(', ')} (known: ${all.map((s) => s.name).join(', ')})`);
  }
  return all.filter((s) => wanted.includes(s.name));
}
