import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where everything lives and which versions/binaries to use; read from the environment once per call. */
export interface StackConfig {
  repoRoot: string;
  /** Runtime state: state.json, data dirs, logs (default `<repo>/.stack`). */
  stateDir: string;
  /** Downloads: Kafka libs, the Maven repo, Apicurio (default `<repo>/.cache/stack`). */
  cacheDir: string;
  java: string;
  /** True when DRIFTLINE_STACK_JAVA was given: never try to install Java then. */
  javaExplicit: boolean;
  mvn: string;
  redisServer: string;
  kafkaVersion: string;
  apicurioVersion: string;
  /** Maven repository base URL used for the Apicurio download (mvn uses its own settings). */
  mavenRepo: string;
  ports: { [K in PortName]?: number | undefined };
  /** Default readiness timeout per service, from DRIFTLINE_STACK_TIMEOUT_MS (default 120 s). */
  timeoutMs: number;
}

export const DEFAULT_KAFKA_VERSION = '4.3.1';
export const DEFAULT_APICURIO_VERSION = '3.0.9';
export const DEFAULT_TIMEOUT_MS = 120_000;

/** test/stack/src (or dist) -> repo root. */
export function defaultRepoRoot(): string {
  return path.resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
}

/**
 * A wrong DRIFTLINE_STACK_* value: the message names the variable and what is wrong, in one line.
 * Programs map it to exit code 78 (a configuration error), not to a failed run.
 */
export class StackConfigError extends Error {
  readonly code = 'STACK_CONFIG_INVALID';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = 'StackConfigError';
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

export function parsePort(name: string, value: string | undefined): number | undefined {
  const v = nonEmpty(value);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) {
    throw new StackConfigError(name, `${name} must be a TCP port number (got ${JSON.stringify(value)})`);
  }
  const port = Number(v);
  if (port < 1 || port > 65535) throw new StackConfigError(name, `${name} must be between 1 and 65535 (got ${port})`);
  return port;
}

function parseVersion(name: string, value: string | undefined, fallback: string): string {
  const v = nonEmpty(value) ?? fallback;
  if (!/^\d+\.\d+\.\d+([.-][A-Za-z0-9.]+)?$/.test(v)) {
    throw new StackConfigError(name, `${name} must look like 1.2.3 (got ${JSON.stringify(v)})`);
  }
  return v;
}

export type PortName = 'kafka' | 'kafkaController' | 'registry' | 'redis';

/** The variable that fixes each port: what an error about that port names. */
export const PORT_VARIABLES: Readonly<Record<PortName, string>> = {
  kafka: 'DRIFTLINE_STACK_KAFKA_PORT',
  kafkaController: 'DRIFTLINE_STACK_KAFKA_CONTROLLER_PORT',
  registry: 'DRIFTLINE_STACK_REGISTRY_PORT',
  redis: 'DRIFTLINE_STACK_REDIS_PORT',
};

export interface ConfigOverrides {
  stateDir?: string | undefined;
  cacheDir?: string | undefined;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: ConfigOverrides = {}): StackConfig {
  const repoRoot = defaultRepoRoot();
  const stateDir = path.resolve(
    overrides.stateDir ?? nonEmpty(env.DRIFTLINE_STACK_DIR) ?? path.join(repoRoot, '.stack'),
  );
  const cacheDir = path.resolve(
    overrides.cacheDir ?? nonEmpty(env.DRIFTLINE_STACK_CACHE_DIR) ?? path.join(repoRoot, '.cache', 'stack'),
  );
  const explicitJava = nonEmpty(env.DRIFTLINE_STACK_JAVA);
  const timeoutRaw = nonEmpty(env.DRIFTLINE_STACK_TIMEOUT_MS);
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (timeoutRaw !== undefined) {
    if (!/^\d+$/.test(timeoutRaw) || Number(timeoutRaw) <= 0) {
      throw new StackConfigError(
        'DRIFTLINE_STACK_TIMEOUT_MS',
        `DRIFTLINE_STACK_TIMEOUT_MS must be a positive integer (got ${JSON.stringify(timeoutRaw)})`,
      );
    }
    timeoutMs = Number(timeoutRaw);
  }
  const kafkaVersion = parseVersion(
    'DRIFTLINE_STACK_KAFKA_VERSION',
    env.DRIFTLINE_STACK_KAFKA_VERSION,
    DEFAULT_KAFKA_VERSION,
  );
  checkClasspath(stateDir, cacheDir);
  return {
    repoRoot,
    stateDir,
    cacheDir,
    java: explicitJava ?? 'java',
    javaExplicit: explicitJava !== undefined,
    mvn: nonEmpty(env.DRIFTLINE_STACK_MVN) ?? 'mvn',
    redisServer: nonEmpty(env.DRIFTLINE_STACK_REDIS_SERVER) ?? 'redis-server',
    kafkaVersion,
    apicurioVersion: parseVersion(
      'DRIFTLINE_STACK_APICURIO_VERSION',
      env.DRIFTLINE_STACK_APICURIO_VERSION,
      DEFAULT_APICURIO_VERSION,
    ),
    mavenRepo: (nonEmpty(env.DRIFTLINE_STACK_MAVEN_REPO) ?? 'https://repo1.maven.org/maven2').replace(/\/+$/, ''),
    ports: {
      kafka: parsePort(PORT_VARIABLES.kafka, env[PORT_VARIABLES.kafka]),
      kafkaController: parsePort(PORT_VARIABLES.kafkaController, env[PORT_VARIABLES.kafkaController]),
      registry: parsePort(PORT_VARIABLES.registry, env[PORT_VARIABLES.registry]),
      redis: parsePort(PORT_VARIABLES.redis, env[PORT_VARIABLES.redis]),
    },
    timeoutMs,
  };
}

/**
 * Kafka and the registry run in folders of the state dir with their jars named relative to it
 * (kafkaClasspath, the registry's `-jar`): Java splits a classpath at `:`, and `-jar` puts its path
 * on one. A `:` the state and cache dirs share is thus harmless; one left in the cache dir's path
 * relative to the state dir is refused here, before anything starts.
 */
function checkClasspath(stateDir: string, cacheDir: string): void {
  const relative = path.relative(stateDir, cacheDir);
  if (relative.includes(path.delimiter)) {
    throw new StackConfigError(
      'DRIFTLINE_STACK_CACHE_DIR',
      `DRIFTLINE_STACK_CACHE_DIR: the cache dir ${cacheDir} holds a '${path.delimiter}' outside the folder it shares with the state dir ${stateDir}, which breaks the Java classpath of Kafka and the registry; use a cache dir without '${path.delimiter}'`,
    );
  }
}

/** Paths inside the state dir. */
export function statePaths(stateDir: string) {
  return {
    stateFile: path.join(stateDir, 'state.json'),
    lockDir: path.join(stateDir, '.lock'),
    logsDir: path.join(stateDir, 'logs'),
    kafkaDir: path.join(stateDir, 'kafka'),
    registryDir: path.join(stateDir, 'schema-registry'),
    redisDir: path.join(stateDir, 'redis'),
  };
}
