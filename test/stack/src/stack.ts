import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  type ConfigOverrides,
  loadConfig,
  PORT_VARIABLES,
  type PortName,
  type StackConfig,
  StackConfigError,
  statePaths,
} from './config.js';
import { dirError, inDir, type StackDir, StackDiskFullError } from './dir-error.js';
import {
  ensureKafkaDist,
  generateClusterId,
  isKafkaCached,
  type KafkaPropertiesInput,
  type KafkaSaslListener,
  kafkaClasspath,
  kafkaReady,
  renderLog4j2Xml,
  renderServerProperties,
} from './kafka.js';
import { acquireLock } from './lock.js';
import { monitoringDown } from './monitoring.js';
import { assignPorts, checkFixedPorts, type PortRequest, pickFreePorts } from './ports.js';
import { checkOwnership, readProcInfo, type SpawnedProcess, spawnDetached, stopProcesses, stopState } from './proc.js';
import { decideRecordedStack } from './recorded.js';
import { redisArgs, redisPing } from './redis.js';
import {
  CCOMPAT_PATH,
  ensureApicurioDist,
  REGISTRY_DATA_DIR,
  registryReady,
  registrySystemProperties,
  setGlobalCompatibility,
} from './registry.js';
import {
  type ProcessRecord,
  readState,
  removeState,
  SERVICE_NAMES,
  type ServiceName,
  type StackState,
  writeState,
} from './state.js';
import { ensureCommands, javaMajorVersion, type Requirement } from './system.js';
import { errorMessage, formatMs, runChecked, sleep, tailFile, which } from './util.js';

export interface StackEndpoints {
  kafkaBrokers: string[];
  /** Full Confluent-compatible base URL, e.g. http://127.0.0.1:8081/apis/ccompat/v7 */
  schemaRegistryUrl: string;
  redisUrl: string;
}

export interface StackUpOptions extends ConfigOverrides {
  log?: (line: string) => void;
  /** Readiness timeout per service, counted from its start (default 120 s or DRIFTLINE_STACK_TIMEOUT_MS). */
  timeoutMs?: number;
  /**
   * Set by a test run's global setup: records this process as a user of the stack (a lease, dropped
   * with `stackRelease`), and marks a stack it starts as started by tests.
   */
  testRun?: boolean;
  /** Redis with an AOF synced every second (the README's production settings) instead of no persistence. */
  durableRedis?: boolean;
  /**
   * Aborts a start-up in progress (Ctrl-C): downloads and probes stop, what this call started is
   * stopped, the lock is released and the promise rejects with the signal's reason.
   */
  signal?: AbortSignal;
}

export interface StackUpResult {
  endpoints: StackEndpoints;
  /** False when a running stack from state.json was reused. */
  startedNow: boolean;
  startupMs: number;
}

export interface StackDownOptions extends ConfigOverrides {
  log?: (line: string) => void;
  /** How long to wait after SIGTERM before SIGKILL (default 15 s). */
  graceMs?: number;
}

export interface StackStatus {
  running: boolean;
  endpoints?: StackEndpoints;
  processes: Array<{ name: string; pid: number; alive: boolean }>;
}

const BIND_ERROR = /Address already in use|BindException|seems to be in use/i;
/** Kafka's, H2's (the registry) and Redis' words for a full disk. */
const DISK_FULL = /No space left on device|ENOSPC|Disk quota exceeded/i;

/** How long `up`/`down` wait for another `up`/`down` on the same state dir (covers a cold download). */
const LOCK_TIMEOUT_MS = 20 * 60_000;

export function endpointsForPorts(ports: { kafka: number; registry: number; redis: number }): StackEndpoints {
  return {
    kafkaBrokers: [`127.0.0.1:${ports.kafka}`],
    schemaRegistryUrl: `http://127.0.0.1:${ports.registry}${CCOMPAT_PATH}`,
    redisUrl: `redis://127.0.0.1:${ports.redis}`,
  };
}

function completeEndpoints(partial: StackState['endpoints']): StackEndpoints | undefined {
  const { kafkaBrokers, schemaRegistryUrl, redisUrl } = partial;
  if (kafkaBrokers === undefined || schemaRegistryUrl === undefined || redisUrl === undefined) return undefined;
  return { kafkaBrokers, schemaRegistryUrl, redisUrl };
}

/** Endpoints of an external stack when DRIFTLINE_KAFKA_BROKERS, _SCHEMA_REGISTRY_URL and _REDIS_URL are all set. */
export function endpointsFromEnv(env: NodeJS.ProcessEnv = process.env): StackEndpoints | undefined {
  const brokers = (env.DRIFTLINE_KAFKA_BROKERS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const schemaRegistryUrl = env.DRIFTLINE_SCHEMA_REGISTRY_URL?.trim();
  const redisUrl = env.DRIFTLINE_REDIS_URL?.trim();
  if (brokers.length === 0 || !schemaRegistryUrl || !redisUrl) return undefined;
  return { kafkaBrokers: brokers, schemaRegistryUrl: schemaRegistryUrl.replace(/\/+$/, ''), redisUrl };
}

/** `export NAME=value` lines for a shell. */
export function envLines(endpoints: StackEndpoints): string[] {
  const quote = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  return [
    `export DRIFTLINE_KAFKA_BROKERS=${quote(endpoints.kafkaBrokers.join(','))}`,
    `export DRIFTLINE_SCHEMA_REGISTRY_URL=${quote(endpoints.schemaRegistryUrl)}`,
    `export DRIFTLINE_REDIS_URL=${quote(endpoints.redisUrl)}`,
  ];
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** One readiness probe per service, against the recorded endpoints. */
function probe(name: ServiceName, endpoints: StackEndpoints): Promise<void> {
  switch (name) {
    case 'kafka':
      return kafkaReady(endpoints.kafkaBrokers);
    case 'schema-registry':
      return registryReady(endpoints.schemaRegistryUrl);
    case 'redis':
      return redisPing(portOf(endpoints.redisUrl));
  }
}

/** Less free than this on the state dir's disk when a service failed: its disk is taken for full. */
const NEARLY_FULL_BYTES = 1024 * 1024;

/** Free bytes for this user on the disk of `dir`; undefined when it cannot be told. */
function freeBytes(dir: string): number | undefined {
  try {
    const stats = fs.statfsSync(dir);
    return stats.bavail * stats.bsize;
  } catch {
    return undefined;
  }
}

/**
 * A service that exited or never answered, with its log's tail and a hint when the cause is known.
 * Logs are `<state dir>/logs/<service>.log` (logFileFor), in the folder a service writes its data
 * in: a full disk shows in the log ("No space left on device", deep in Kafka's trace) or, when the
 * log itself could not be written (the registry's H2 trace was cut off), in the free space left.
 */
export function serviceError(name: string, problem: string, logFile: string): Error {
  const tail = tailFile(logFile, 40);
  const stateDir = path.dirname(path.dirname(logFile));
  let hint = '';
  if (DISK_FULL.test(tail) || (freeBytes(stateDir) ?? Number.POSITIVE_INFINITY) < NEARLY_FULL_BYTES) {
    hint = `\nhint: no space left on ${stateDir} (its data and logs); free some space, or point DRIFTLINE_STACK_DIR at a folder on another disk.`;
  } else if (/UnsupportedClassVersionError/.test(tail)) {
    hint = '\nhint: this needs a newer Java; point DRIFTLINE_STACK_JAVA at a Java 21+ binary or use an older version.';
  } else if (BIND_ERROR.test(tail)) {
    hint = '\nhint: its port was taken by another process; run `pnpm -s stack up` again (or pick another port).';
  }
  return new Error(
    `${name} ${problem}.\nlog: ${logFile}\n--- last lines of ${path.basename(logFile)} ---\n${tail || '(empty)'}${hint}`,
  );
}

async function waitReady(
  name: ServiceName,
  check: () => Promise<void>,
  spawned: SpawnedProcess,
  logFile: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  let exitMessage: string | undefined;
  void spawned.exited.then((m) => {
    exitMessage = m;
  });
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no check yet';
  for (;;) {
    signal?.throwIfAborted();
    if (exitMessage !== undefined) throw serviceError(name, `${exitMessage} before becoming ready`, logFile);
    try {
      await check();
      return;
    } catch (err) {
      lastError = errorMessage(err);
    }
    if (exitMessage !== undefined) throw serviceError(name, `${exitMessage} before becoming ready`, logFile);
    if (Date.now() >= deadline) {
      throw serviceError(name, `was not ready within ${formatMs(timeoutMs)} (last check: ${lastError})`, logFile);
    }
    await sleep(250);
  }
}

/**
 * Whether a recorded stack can be reused: every process ours, alive and answering its probe
 * (within 15 s: a loaded machine answers slowly). Otherwise says what is wrong.
 */
async function recordedHealth(
  state: StackState,
  signal: AbortSignal | undefined,
): Promise<{ endpoints: StackEndpoints } | { problem: string }> {
  const endpoints = completeEndpoints(state.endpoints);
  if (endpoints === undefined || state.readyAt === undefined) return { problem: 'its start-up never finished' };
  for (const name of SERVICE_NAMES) {
    const record = state.processes.find((p) => p.name === name);
    if (record === undefined) return { problem: `${name} is not recorded` };
    if (checkOwnership(record) !== 'owned') return { problem: `${name} (pid ${record.pid}) is not running` };
  }
  const deadline = Date.now() + 15_000;
  for (const name of SERVICE_NAMES) {
    for (;;) {
      signal?.throwIfAborted();
      try {
        await probe(name, endpoints);
        break;
      } catch (err) {
        if (Date.now() >= deadline) return { problem: `${name}: running but not answering: ${errorMessage(err)}` };
        await sleep(250);
      }
    }
  }
  return { endpoints };
}

/** The ports a recorded stack listens on (older state files: the three in its endpoints). */
function recordedPorts(state: StackState): { [K in PortName]?: number } {
  if (state.ports !== undefined) return state.ports;
  const endpoints = completeEndpoints(state.endpoints);
  if (endpoints === undefined) return {};
  const kafka = Number(endpoints.kafkaBrokers[0]?.split(':').pop());
  return { kafka, registry: portOf(endpoints.schemaRegistryUrl), redis: portOf(endpoints.redisUrl) };
}

/** One entry per fixed DRIFTLINE_STACK_*_PORT that differs from what the recorded stack uses. */
function portChanges(cfg: StackConfig, state: StackState): string[] {
  const recorded = recordedPorts(state);
  return (Object.keys(PORT_VARIABLES) as PortName[]).flatMap((name) => {
    const wanted = cfg.ports[name];
    const actual = recorded[name];
    return wanted === undefined || actual === undefined || wanted === actual
      ? []
      : [`${PORT_VARIABLES[name]}=${wanted} but the running stack uses ${actual}`];
  });
}

function portRequests(cfg: StackConfig): PortRequest[] {
  return (Object.keys(PORT_VARIABLES) as PortName[]).map((name) => ({
    name,
    fixed: cfg.ports[name],
    variable: PORT_VARIABLES[name],
  }));
}

function readStateOrWarn(file: string, log: (line: string) => void): StackState | undefined {
  try {
    return readState(file);
  } catch (err) {
    log(`ignoring unreadable ${file}: ${errorMessage(err)}`);
    return undefined;
  }
}

function removeRuntimeDirs(cfg: StackConfig): void {
  const p = statePaths(cfg.stateDir);
  for (const dir of [p.kafkaDir, p.registryDir, p.redisDir]) fs.rmSync(dir, { recursive: true, force: true });
}

interface StartContext {
  cfg: StackConfig;
  stackId: string;
  java: string;
  ports: { kafka: number; kafkaController: number; registry: number; redis: number };
  endpoints: StackEndpoints;
  timeoutMs: number;
  durableRedis: boolean;
  log: (line: string) => void;
  /** Records a spawned process in state.json right away (so a failed `up` can still clean up). */
  record: (rec: ProcessRecord) => void;
  signal: AbortSignal | undefined;
}

function logFileFor(cfg: StackConfig, name: ServiceName): string {
  return path.join(statePaths(cfg.stateDir).logsDir, `${name}.log`);
}

async function spawnService(
  ctx: StartContext,
  name: ServiceName,
  command: string,
  args: string[],
  cwd: string,
  port: number,
  markers: string[],
): Promise<SpawnedProcess> {
  ctx.signal?.throwIfAborted(); // never start a process after Ctrl-C
  const logFile = logFileFor(ctx.cfg, name);
  const spawned = await spawnDetached({ command, args, cwd, logFile });
  ctx.record({
    name,
    pid: spawned.pid,
    startTime: spawned.startTime,
    markers,
    port,
    command: [command, ...args],
    cwd,
    logFile,
    startedAt: new Date().toISOString(),
  });
  ctx.log(`${name}: started pid ${spawned.pid} on 127.0.0.1:${port}`);
  return spawned;
}

/**
 * Formats a KRaft node's storage in `dir` and spawns it (through `spawn`, which records it): the
 * stack's Kafka and a private broker of a test (`startKafkaBroker`) alike.
 */
async function launchKafka(opts: {
  cfg: StackConfig;
  java: string;
  dir: string;
  logFile: string;
  marker: string;
  properties: Omit<KafkaPropertiesInput, 'logDir'>;
  signal: AbortSignal | undefined;
  spawn: (command: string, args: string[], markers: string[]) => Promise<SpawnedProcess>;
}): Promise<SpawnedProcess> {
  const { cfg, dir, logFile, marker } = opts;
  const dist = await ensureKafkaDist(cfg.cacheDir, cfg.kafkaVersion, cfg.mvn, () => {}, opts.signal);
  const dataDir = path.join(dir, 'data');
  const propsFile = path.join(dir, 'server.properties');
  const log4jFile = path.join(dir, 'log4j2.xml');
  fs.mkdirSync(dataDir, { recursive: true });
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  fs.writeFileSync(propsFile, renderServerProperties({ ...opts.properties, logDir: dataDir }));
  fs.writeFileSync(log4jFile, renderLog4j2Xml());
  const jvm = [
    marker,
    `-Dlog4j2.configurationFile=${log4jFile}`,
    `-Djava.io.tmpdir=${path.join(dir, 'tmp')}`,
    '-Djava.awt.headless=true',
    '-cp',
    kafkaClasspath(dir, dist.libsDir),
  ];
  await runChecked(
    opts.java,
    // A short-lived tool: C1 only and the serial GC start fastest.
    [
      '-Xmx256m',
      '-XX:TieredStopAtLevel=1',
      '-XX:+UseSerialGC',
      ...jvm,
      'kafka.tools.StorageTool',
      'format',
      '-t',
      generateClusterId(),
      '-c',
      propsFile,
    ],
    { cwd: dir, logFile, timeoutMs: 120_000, what: 'kafka storage format', signal: opts.signal },
  );
  return opts.spawn(
    opts.java,
    ['-Xmx512m', '-XX:+ExitOnOutOfMemoryError', ...jvm, 'kafka.Kafka', propsFile],
    [marker, 'kafka.Kafka'],
  );
}

async function startKafka(ctx: StartContext): Promise<void> {
  const { cfg } = ctx;
  // Downloads are logged here (launchKafka's own call then finds the jars cached).
  await ensureKafkaDist(cfg.cacheDir, cfg.kafkaVersion, cfg.mvn, ctx.log, ctx.signal);
  const dir = statePaths(cfg.stateDir).kafkaDir;
  const logFile = logFileFor(cfg, 'kafka');
  const spawned = await launchKafka({
    cfg,
    java: ctx.java,
    dir,
    logFile,
    marker: `-Ddriftline.stack=${ctx.stackId}`,
    properties: { port: ctx.ports.kafka, controllerPort: ctx.ports.kafkaController },
    signal: ctx.signal,
    spawn: (command, args, markers) => spawnService(ctx, 'kafka', command, args, dir, ctx.ports.kafka, markers),
  });
  await waitReady('kafka', () => kafkaReady(ctx.endpoints.kafkaBrokers), spawned, logFile, ctx.timeoutMs, ctx.signal);
}

export interface KafkaBrokerOptions extends Pick<ConfigOverrides, 'cacheDir'> {
  /** Its folder: data, server.properties and `kafka.log` (made when missing; the caller removes it). */
  dir: string;
  /** A SASL_PLAINTEXT listener beside the PLAINTEXT one (its port is picked here). */
  sasl?: Omit<KafkaSaslListener, 'port'>;
  /** Readiness timeout (default the stack's, DRIFTLINE_STACK_TIMEOUT_MS or 120 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface KafkaBroker {
  /** The PLAINTEXT listener: no authentication (admin calls, SCRAM users made and deleted). */
  brokers: string[];
  /** The SASL_PLAINTEXT listener, when `sasl` was given (else empty). */
  saslBrokers: string[];
  pid: number;
  logFile: string;
  /** SIGTERM, SIGKILL after 10 s; the folder stays. */
  stop(): Promise<void>;
}

/**
 * A private single-node KRaft broker of the stack's Kafka distribution, outside any stack (no
 * state.json, no registry, no Redis): for a test that needs a broker set up otherwise than the
 * shared one (SASL) or one it may break. One JVM; stop it in the test's teardown.
 */
export async function startKafkaBroker(options: KafkaBrokerOptions): Promise<KafkaBroker> {
  const cfg = loadConfig(process.env, options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir });
  const java = which(cfg.java) ?? cfg.java;
  const [port, controllerPort, saslPort] = await pickFreePorts(3);
  if (port === undefined || controllerPort === undefined || saslPort === undefined) throw new Error('no ports picked');
  const dir = path.resolve(options.dir);
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'kafka.log');
  fs.writeFileSync(logFile, '');
  const marker = `-Ddriftline.broker=${crypto.randomBytes(6).toString('hex')}`;
  let record: ProcessRecord | undefined;
  const spawned = await launchKafka({
    cfg,
    java,
    dir,
    logFile,
    marker,
    properties: {
      port,
      controllerPort,
      ...(options.sasl === undefined ? {} : { sasl: { ...options.sasl, port: saslPort } }),
    },
    signal: options.signal,
    spawn: async (command, args, markers) => {
      const started = await spawnDetached({ command, args, cwd: dir, logFile });
      record = {
        name: 'kafka',
        pid: started.pid,
        startTime: started.startTime,
        markers,
        port,
        command: [command, ...args],
        cwd: dir,
        logFile,
        startedAt: new Date().toISOString(),
      };
      return started;
    },
  });
  const stop = async () => {
    if (record !== undefined) await stopProcesses([record], { graceMs: 10_000 });
  };
  const brokers = [`127.0.0.1:${port}`];
  try {
    await waitReady(
      'kafka',
      () => kafkaReady(brokers),
      spawned,
      logFile,
      options.timeoutMs ?? cfg.timeoutMs,
      options.signal,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    brokers,
    saslBrokers: options.sasl === undefined ? [] : [`127.0.0.1:${saslPort}`],
    pid: spawned.pid,
    logFile,
    stop,
  };
}

async function startRegistry(ctx: StartContext): Promise<void> {
  const { cfg } = ctx;
  const dist = await ensureApicurioDist(cfg.cacheDir, cfg.apicurioVersion, cfg.mavenRepo, ctx.log, ctx.signal);
  const dir = statePaths(cfg.stateDir).registryDir;
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  fs.mkdirSync(path.join(dir, REGISTRY_DATA_DIR), { recursive: true });
  const marker = `-Ddriftline.stack=${ctx.stackId}`;
  // Relative to its working directory: `-jar` puts the path on Java's classpath, split at `:`.
  const jar = path.relative(dir, dist.jar);
  const spawned = await spawnService(
    ctx,
    'schema-registry',
    ctx.java,
    [
      '-Xmx512m',
      '-XX:+ExitOnOutOfMemoryError',
      // The registry serves few, cached lookups: C1 only halves its start-up on a busy 2-CPU machine.
      '-XX:TieredStopAtLevel=1',
      marker,
      `-Djava.io.tmpdir=${path.join(dir, 'tmp')}`,
      ...registrySystemProperties(ctx.ports.registry),
      '-jar',
      jar,
    ],
    dir,
    ctx.ports.registry,
    [marker, jar],
  );
  const logFile = logFileFor(cfg, 'schema-registry');
  await waitReady(
    'schema-registry',
    () => registryReady(ctx.endpoints.schemaRegistryUrl),
    spawned,
    logFile,
    ctx.timeoutMs,
    ctx.signal,
  );
  await setGlobalCompatibility(ctx.endpoints.schemaRegistryUrl, 'FULL');
}

async function startRedis(ctx: StartContext, redisServer: string): Promise<void> {
  const dir = statePaths(ctx.cfg.stateDir).redisDir;
  fs.mkdirSync(dir, { recursive: true });
  const spawned = await spawnService(
    ctx,
    'redis',
    redisServer,
    redisArgs(ctx.ports.redis, dir, ctx.durableRedis),
    dir,
    ctx.ports.redis,
    // redis rewrites its process title ("redis-server 127.0.0.1:<port>"), so only its name is a
    // stable marker; the recorded start time is what makes the identity unique.
    [path.basename(redisServer)],
  );
  const logFile = logFileFor(ctx.cfg, 'redis');
  await waitReady('redis', () => redisPing(ctx.ports.redis), spawned, logFile, ctx.timeoutMs, ctx.signal);
}

interface Binaries {
  java: string;
  redisServer: string;
}

/**
 * The binaries a start needs, installed when missing and allowed (see ensureCommands) and checked
 * (Java 17+). Run before anything of a recorded stack is stopped: a bad DRIFTLINE_STACK_JAVA used
 * to stop a working stack and then fail to start a new one.
 */
async function checkRequirements(cfg: StackConfig, log: (line: string) => void): Promise<Binaries> {
  const paths = statePaths(cfg.stateDir);
  fs.mkdirSync(paths.logsDir, { recursive: true });
  // Serially: apt-get must not run twice at once.
  const requirements: Requirement[] = [
    {
      what: 'Java 17+',
      command: cfg.java,
      aptPackage: 'openjdk-17-jre-headless',
      explicit: cfg.javaExplicit,
      variable: 'DRIFTLINE_STACK_JAVA',
    },
    {
      what: 'redis-server',
      command: cfg.redisServer,
      aptPackage: 'redis-server',
      explicit: cfg.redisServer !== 'redis-server',
      variable: 'DRIFTLINE_STACK_REDIS_SERVER',
    },
  ];
  if (!isKafkaCached(cfg.cacheDir, cfg.kafkaVersion)) {
    requirements.push({
      what: 'Maven',
      command: cfg.mvn,
      aptPackage: 'maven',
      explicit: cfg.mvn !== 'mvn',
      variable: 'DRIFTLINE_STACK_MVN',
    });
  }
  await ensureCommands(requirements, { logFile: path.join(paths.logsDir, 'apt.log'), log });
  const java = which(cfg.java) ?? cfg.java;
  const redisServer = which(cfg.redisServer) ?? cfg.redisServer;
  const javaMajor = await javaMajorVersion(java);
  if (javaMajor !== undefined && javaMajor < 17) {
    const message = `${java} is Java ${javaMajor}; Kafka ${cfg.kafkaVersion} and Apicurio need Java 17+`;
    // The binary DRIFTLINE_STACK_JAVA names: a bad value of it (exit 78), like a missing one.
    if (cfg.javaExplicit) throw new StackConfigError('DRIFTLINE_STACK_JAVA', `DRIFTLINE_STACK_JAVA: ${message}`);
    throw new Error(`${message} (set DRIFTLINE_STACK_JAVA)`);
  }
  return { java, redisServer };
}

async function startFresh(
  cfg: StackConfig,
  binaries: Binaries,
  timeoutMs: number,
  log: (line: string) => void,
  durableRedis: boolean,
  signal: AbortSignal | undefined,
): Promise<{ endpoints: StackEndpoints; state: StackState }> {
  const paths = statePaths(cfg.stateDir);
  const { java, redisServer } = binaries;
  const assigned = await assignPorts(portRequests(cfg));
  const port = (name: string) => {
    const p = assigned.get(name);
    if (p === undefined) throw new Error(`no port assigned for ${name}`);
    return p;
  };
  const ports = {
    kafka: port('kafka'),
    kafkaController: port('kafkaController'),
    registry: port('registry'),
    redis: port('redis'),
  };
  const endpoints = endpointsForPorts(ports);

  removeRuntimeDirs(cfg);
  for (const name of SERVICE_NAMES) fs.writeFileSync(logFileFor(cfg, name), '');

  const state: StackState = {
    version: 1,
    stackId: crypto.randomBytes(6).toString('hex'),
    createdAt: new Date().toISOString(),
    endpoints,
    ports,
    processes: [],
  };
  writeState(paths.stateFile, state);
  const ctx: StartContext = {
    cfg,
    stackId: state.stackId,
    java,
    ports,
    endpoints,
    timeoutMs,
    durableRedis,
    log,
    record: (rec) => {
      state.processes.push(rec);
      writeState(paths.stateFile, state);
    },
    signal,
  };

  const timed = async (name: ServiceName, start: () => Promise<void>) => {
    const t = performance.now();
    await start();
    log(`${name}: ready (${formatMs(performance.now() - t)})`);
  };
  const results = await Promise.allSettled([
    timed('kafka', () => startKafka(ctx)),
    timed('schema-registry', () => startRegistry(ctx)),
    timed('redis', () => startRedis(ctx, redisServer)),
  ]);
  // File-system errors in the state dir as one line naming it; the cache dir's are already (dirError).
  const reasons = results.flatMap((r) => (r.status === 'rejected' ? [dirError(r.reason, stateDirOf(cfg))] : []));
  if (reasons.length > 0) {
    const aborted = signal?.aborted === true;
    log(aborted ? 'start-up interrupted; stopping what was started' : 'start-up failed; stopping what was started');
    // Kafka and the registry meeting the same read-only or full folder: said once, as itself (exit 78 or 1).
    const failures = [...new Set(reasons.map(errorMessage))];
    const [first] = reasons;
    const failed: unknown = aborted
      ? signal?.reason
      : failures.length === 1 && (first instanceof StackConfigError || first instanceof StackDiskFullError)
        ? first
        : new Error(`stack up failed:\n${failures.join('\n\n')}`);
    try {
      await stopProcesses(state.processes, { log, graceMs: 5_000 });
    } catch (err) {
      // Keep state.json so `stack down` can retry.
      throw new Error(`${errorMessage(failed)}\n\nand cleaning up failed too: ${errorMessage(err)}`);
    }
    removeState(paths.stateFile);
    removeRuntimeDirs(cfg);
    throw failed;
  }
  return { endpoints, state };
}

/**
 * Starts Kafka (KRaft), the Apicurio schema registry and redis-server as detached processes (or reuses
 * a running stack recorded in state.json) and waits until each answers.
 */
export async function stackUp(options: StackUpOptions = {}): Promise<StackUpResult> {
  const t0 = performance.now();
  const cfg = loadConfig(process.env, options);
  return inDir(stateDirOf(cfg), () => up(cfg, options, t0));
}

/** The state dir as file-system errors name it (dirError). */
function stateDirOf(cfg: StackConfig): StackDir {
  return { what: 'state dir', dir: cfg.stateDir, variable: 'DRIFTLINE_STACK_DIR' };
}

async function up(cfg: StackConfig, options: StackUpOptions, t0: number): Promise<StackUpResult> {
  const log = options.log ?? (() => {});
  const timeoutMs = options.timeoutMs ?? cfg.timeoutMs;
  const paths = statePaths(cfg.stateDir);
  fs.mkdirSync(cfg.stateDir, { recursive: true });
  const { signal } = options;
  const release = await acquireLock(paths.lockDir, { timeoutMs: LOCK_TIMEOUT_MS, log, signal });
  try {
    const existing = readStateOrWarn(paths.stateFile, log);
    let binaries: Binaries;
    if (existing !== undefined) {
      const health = await recordedHealth(existing, signal);
      const action = decideRecordedStack({
        stateDir: cfg.stateDir,
        problem: 'problem' in health ? health.problem : undefined,
        leasedBy: liveLeases(existing).map((l) => l.pid),
        anyRunning: existing.processes.some((p) => checkOwnership(p) === 'owned'),
        portChanges: portChanges(cfg, existing),
      });
      if (action.kind === 'refuse') throw new Error(action.message);
      if (action.kind === 'reuse' && 'endpoints' in health) {
        if (action.note !== undefined) log(action.note);
        log(`reusing the running stack (state: ${paths.stateFile})`);
        if (options.testRun) writeState(paths.stateFile, withLease(existing));
        // An explicit `stack up` adopts a stack a test run started: test runs then leave it running.
        else if (existing.startedBy === 'test') writeState(paths.stateFile, { ...existing, startedBy: 'cli' });
        return { endpoints: health.endpoints, startedNow: false, startupMs: Math.round(performance.now() - t0) };
      }
      // What a new stack needs is checked before anything of the old one is stopped: its fixed
      // ports (free, or the old stack's own) and its binaries.
      const ownPorts = new Set(Object.values(recordedPorts(existing)).filter((p) => p !== undefined));
      await checkFixedPorts(portRequests(cfg), undefined, ownPorts);
      binaries = await checkRequirements(cfg, log);
      signal?.throwIfAborted();
      log(`${action.kind === 'replace' ? action.reason : 'replacing the recorded stack'}; stopping what is left of it`);
      await stopProcesses(existing.processes, { log });
      removeState(paths.stateFile);
    } else {
      binaries = await checkRequirements(cfg, log);
    }
    const durableRedis = options.durableRedis === true;
    let started: { endpoints: StackEndpoints; state: StackState };
    try {
      started = await startFresh(cfg, binaries, timeoutMs, log, durableRedis, signal);
    } catch (err) {
      // A freely picked port can be taken between picking and binding: retry once with new ports.
      const fixedPorts = Object.values(cfg.ports).some((p) => p !== undefined);
      if (signal?.aborted || fixedPorts || !BIND_ERROR.test(errorMessage(err))) throw err;
      log('a port was taken while starting; retrying once with new ports');
      started = await startFresh(cfg, binaries, timeoutMs, log, durableRedis, signal);
    }
    const { endpoints, state } = started;
    const startupMs = Math.round(performance.now() - t0);
    const ready: StackState = {
      ...state,
      readyAt: new Date().toISOString(),
      startupMs,
      startedBy: options.testRun ? 'test' : 'cli',
    };
    writeState(paths.stateFile, options.testRun ? withLease(ready) : ready);
    return { endpoints, startedNow: true, startupMs };
  } finally {
    release();
  }
}

type Lease = NonNullable<StackState['leases']>[number];

function myLease(): Lease {
  return { pid: process.pid, startTime: readProcInfo(process.pid)?.startTime ?? 'unknown' };
}

function leaseAlive(lease: Lease): boolean {
  const info = readProcInfo(lease.pid);
  return info !== undefined && !info.zombie && info.startTime === lease.startTime;
}

function pidList(leases: readonly Lease[]): string {
  return leases.map((l) => l.pid).join(', ');
}

/** Leases of other processes that are still alive. */
function liveLeases(state: StackState): Lease[] {
  return (state.leases ?? []).filter((l) => l.pid !== process.pid && leaseAlive(l));
}

/** The state with this process's lease added and leases of dead processes dropped. */
function withLease(state: StackState): StackState {
  const me = myLease();
  const others = (state.leases ?? []).filter((l) => l.pid !== me.pid && leaseAlive(l));
  return { ...state, leases: [...others, me] };
}

/**
 * Ends a test run's use of the stack (the counterpart of `stackUp({ testRun: true })`): drops this
 * process's lease and, when the stack was started by a test run and no other live test run still
 * uses it, stops it. A stack started with `stack up` is never stopped here. `keep`
 * (DRIFTLINE_STACK_KEEP) leaves the stack running as if started with `stack up`: left as it was, the
 * next plain test run reused it as a test run's stack and stopped it at its teardown. KEEP wins
 * over the runs sharing the stack: one that started it and ends after the KEEP run leaves it
 * running too (the KEEP run asked for the stack after its end, whoever started it).
 */
export async function stackRelease(options: StackDownOptions & { keep?: boolean } = {}): Promise<{ stopped: number }> {
  const cfg = loadConfig(process.env, options);
  return inDir(stateDirOf(cfg), () => dropLease(cfg, options));
}

async function dropLease(
  cfg: StackConfig,
  options: StackDownOptions & { keep?: boolean },
): Promise<{ stopped: number }> {
  const log = options.log ?? (() => {});
  const paths = statePaths(cfg.stateDir);
  if (!fs.existsSync(cfg.stateDir)) return { stopped: 0 };
  const release = await acquireLock(paths.lockDir, { timeoutMs: LOCK_TIMEOUT_MS, log });
  try {
    const state = readStateOrWarn(paths.stateFile, log);
    if (state === undefined) return { stopped: 0 };
    const others = liveLeases(state);
    if (state.startedBy !== 'test' || others.length > 0 || options.keep) {
      writeState(paths.stateFile, { ...state, leases: others, ...(options.keep ? { startedBy: 'cli' as const } : {}) });
      if (options.keep && state.startedBy === 'test') {
        log('DRIFTLINE_STACK_KEEP: the stack runs until `stack down` (test runs using it leave it too)');
      } else if (state.startedBy === 'test' && others.length > 0) {
        log(`leaving the stack running for ${others.length} other run(s) using it (pid ${pidList(others)})`);
      }
      return { stopped: 0 };
    }
    return await stopRecorded(state, cfg, options, log);
  } finally {
    release();
  }
}

async function stopRecorded(
  state: StackState,
  cfg: StackConfig,
  options: StackDownOptions,
  log: (line: string) => void,
): Promise<{ stopped: number }> {
  const stopped = await stopProcesses(
    state.processes,
    options.graceMs === undefined ? { log } : { log, graceMs: options.graceMs },
  );
  removeState(statePaths(cfg.stateDir).stateFile);
  removeRuntimeDirs(cfg);
  return { stopped };
}

/**
 * Stops exactly the processes recorded in state.json (if they are still ours) and removes the state;
 * also the optional Prometheus and Alertmanager of `stack up --with monitoring` (own state file).
 */
export async function stackDown(options: StackDownOptions = {}): Promise<{ stopped: number }> {
  const stateDir = loadConfig(process.env, options).stateDir;
  const monitoring = await monitoringDown({ stateDir, ...(options.log ? { log: options.log } : {}) });
  const { stopped } = await stopStack(options);
  return { stopped: stopped + monitoring.stopped };
}

async function stopStack(options: StackDownOptions): Promise<{ stopped: number }> {
  const cfg = loadConfig(process.env, options);
  return inDir(stateDirOf(cfg), () => stopLocked(cfg, options));
}

async function stopLocked(cfg: StackConfig, options: StackDownOptions): Promise<{ stopped: number }> {
  const log = options.log ?? (() => {});
  const paths = statePaths(cfg.stateDir);
  if (!fs.existsSync(cfg.stateDir)) return { stopped: 0 };
  const release = await acquireLock(paths.lockDir, { timeoutMs: LOCK_TIMEOUT_MS, log });
  try {
    const state = readStateOrWarn(paths.stateFile, log);
    if (state === undefined) {
      log(`no stack recorded in ${paths.stateFile}`);
      return { stopped: 0 };
    }
    const live = liveLeases(state);
    // Leases are held by test runs, demos and benchmarks alike: name none of them wrongly.
    if (live.length > 0) {
      log(`note: stopping it under run(s) still using it (tests, a demo or benchmarks): pid ${pidList(live)}`);
    }
    return await stopRecorded(state, cfg, options, log);
  } finally {
    release();
  }
}

/** What state.json says and whether each recorded process is still alive (no network probes). */
export async function stackStatus(options: ConfigOverrides = {}): Promise<StackStatus> {
  const cfg = loadConfig(process.env, options);
  // A state dir that is a file: one line naming DRIFTLINE_STACK_DIR (a raw ENOTDIR before).
  const state = await inDir(stateDirOf(cfg), async () => readState(statePaths(cfg.stateDir).stateFile));
  if (state === undefined) return { running: false, processes: [] };
  const processes = state.processes.map((p) => ({ name: p.name, pid: p.pid, alive: checkOwnership(p) === 'owned' }));
  const endpoints = completeEndpoints(state.endpoints);
  const running =
    state.readyAt !== undefined &&
    endpoints !== undefined &&
    SERVICE_NAMES.every((name) => processes.some((p) => p.name === name && p.alive));
  return endpoints === undefined ? { running, processes } : { running, endpoints, processes };
}

export type StackComponent = ServiceName;

export interface ComponentOptions extends ConfigOverrides {
  log?: (line: string) => void;
  /** Readiness timeout after the restart (default: the stack's timeout). */
  timeoutMs?: number;
}

function ownedRecord(cfg: StackConfig, name: ServiceName): { state: StackState; record: ProcessRecord } {
  const state = readState(statePaths(cfg.stateDir).stateFile);
  const record = state?.processes.find((p) => p.name === name);
  if (state === undefined || record === undefined) throw new Error(`no ${name} recorded in ${cfg.stateDir}`);
  if (checkOwnership(record) !== 'owned') throw new Error(`${name} (pid ${record.pid}) is not running`);
  return { state, record };
}

/**
 * Kills one component of a running stack (SIGKILL to its process group: a crash, not a clean stop)
 * and starts it again with the same command line, port and data: Kafka's log dirs, the registry's
 * H2 file, Redis' AOF (when started `durableRedis`). Resolves once it answers its readiness probe.
 */
export async function restartComponent(name: StackComponent, options: ComponentOptions = {}): Promise<void> {
  const log = options.log ?? (() => {});
  const cfg = loadConfig(process.env, options);
  const paths = statePaths(cfg.stateDir);
  const release = await acquireLock(paths.lockDir, { timeoutMs: LOCK_TIMEOUT_MS, log });
  let spawned: SpawnedProcess;
  let endpoints: StackEndpoints | undefined;
  try {
    const { state, record } = ownedRecord(cfg, name);
    endpoints = completeEndpoints(state.endpoints);
    if (endpoints === undefined) throw new Error(`the stack in ${cfg.stateDir} has no endpoints`);
    process.kill(-record.pid, 'SIGKILL'); // detached: it leads its own process group
    const deadline = Date.now() + 10_000;
    while (checkOwnership(record) === 'owned') {
      if (Date.now() > deadline) throw new Error(`${name} (pid ${record.pid}) survived SIGKILL for 10 s`);
      await sleep(50);
    }
    const [command, ...args] = record.command;
    if (command === undefined) throw new Error(`${name} has no recorded command`);
    spawned = await spawnDetached({ command, args, cwd: record.cwd, logFile: record.logFile });
    const updated = { ...record, pid: spawned.pid, startTime: spawned.startTime, startedAt: new Date().toISOString() };
    writeState(paths.stateFile, {
      ...state,
      processes: state.processes.map((p) => (p.name === name ? updated : p)),
    });
    log(`${name}: restarted as pid ${spawned.pid}`);
  } finally {
    release();
  }
  const ready = endpoints;
  await waitReady(name, () => probe(name, ready), spawned, logFileFor(cfg, name), options.timeoutMs ?? cfg.timeoutMs);
}

/**
 * SIGSTOP (`paused`) or SIGCONT to one component of a running stack: a hung server, not a dead one.
 * Resolves once every thread of the process has stopped (or none is stopped): the signal only
 * queues the stop, and a busy JVM was seen answering a request 10 ms after `kill` returned.
 */
export async function pauseComponent(
  name: StackComponent,
  paused: boolean,
  options: ConfigOverrides = {},
): Promise<void> {
  const cfg = loadConfig(process.env, options);
  const { record } = ownedRecord(cfg, name);
  process.kill(record.pid, paused ? 'SIGSTOP' : 'SIGCONT');
  const wanted = paused ? 'stopped' : 'running';
  const deadline = Date.now() + PAUSE_TIMEOUT_MS;
  for (;;) {
    const state = stopState(record.pid);
    if (state === wanted) return;
    if (state === undefined)
      throw new Error(`${name} (pid ${record.pid}) exited while being ${paused ? 'paused' : 'resumed'}`);
    if (Date.now() > deadline)
      throw new Error(`${name} (pid ${record.pid}) not ${wanted} ${PAUSE_TIMEOUT_MS} ms after the signal (${state})`);
    await sleep(2);
  }
}

const PAUSE_TIMEOUT_MS = 10_000;
