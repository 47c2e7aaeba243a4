import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually } from './index.js';

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
