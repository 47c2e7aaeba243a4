import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
}

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
  return {
    output: () => output,
    exited,
    assertRunning() {
      if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${output}`);
    },
    kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
