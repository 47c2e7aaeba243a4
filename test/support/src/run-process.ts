import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually, freePort, type StackAddresses, serviceEnv } from './index.js';
import { proxyOn } from './proxy.js';

/** The repository root (this file is test/support/src/). */
const root = fileURLToPath(new URL('../../..', import.meta.url));

/** `driftline run <service>` from source in a child process of its own. */
export interface DriftlineRun {
  /** What it printed so far, stdout and stderr interleaved. */
  output(): string;
  /** Its exit code (null: killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Throws, naming the exit code and the output, once it has exited (for `eventually` while it must run). */
  assertRunning(): void;
  /** SIGKILL unless it has exited. */
  kill(): void;
  /** Resolves once its output holds `text`; rejects if it exits first or `timeoutMs` passes. */
  untilOutput(text: string, timeoutMs?: number): Promise<void>;
  /** The lines of its output so far that hold `text`. */
  linesNaming(text: string): string[];
}

/** The one line a service prints when the Redis server refuses database 99 of its URL (exit 78). */
export const DATABASE_99_REFUSED_LINE =
  /configuration error: DRIFTLINE_REDIS_URL: the server refuses database 99 \(ERR DB index/;

export function spawnDriftlineRun(service: string, env: NodeJS.ProcessEnv): DriftlineRun {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=source', 'services/cli/src/main.ts', 'run', service],
    { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const assertRunning = () => {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${output}`);
  };
  return {
    output: () => output,
    exited,
    assertRunning,
    untilOutput: (text, timeoutMs = 60_000) =>
      eventually(async () => {
        assertRunning();
        return output.includes(text) ? true : undefined;
      }, timeoutMs).then(() => undefined),
    linesNaming: (text) => output.split('\n').filter((line) => line.includes(text)),
    kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * The check every Redis-reading service shares: started with its Redis down and a URL naming
 * database 99 (of 16), it starts (`untilStarted`, by default its "service started" line), and once
 * Redis answers it ends: exit 78 and the one line naming DRIFTLINE_REDIS_URL. `env` gives the
 * service's variables for a Redis URL; `cleanup` takes what the caller's afterEach undoes.
 */
export async function expectDatabase99Refused(options: {
  readonly service: string;
  readonly stack: StackAddresses;
  readonly env: (redisUrl: string) => Record<string, string>;
  readonly cleanup: (undo: () => unknown) => void;
  readonly untilStarted?: (child: DriftlineRun) => Promise<void>;
}): Promise<{ exit: number | null; lines: string[] }> {
  const redisPort = await freePort();
  const child = spawnDriftlineRun(
    options.service,
    serviceEnv(options.stack, options.env(`redis://127.0.0.1:${redisPort}/99`)),
  );
  options.cleanup(() => child.kill());
  await (options.untilStarted ?? ((started) => started.untilOutput('"msg":"service started"')))(child);
  const redis = await proxyOn(redisPort, options.stack.redisUrl);
  options.cleanup(() => new Promise((resolve) => redis.close(resolve)));
  return { exit: await child.exited, lines: child.linesNaming('DRIFTLINE_REDIS_URL') };
}
