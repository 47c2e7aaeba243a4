import fs from 'node:fs';
import path from 'node:path';
import { StackConfigError } from './config.js';
import { run, runChecked, which } from './util.js';

/** A binary we need, and the Debian/Ubuntu package that provides it. */
export interface Requirement {
  what: string;
  command: string;
  aptPackage: string;
  /** When the user named the binary explicitly we never install anything for it. */
  explicit: boolean;
  /** The variable that points at another binary (DRIFTLINE_STACK_JAVA, …), named in the error. */
  variable: string;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Makes sure every required command exists. Missing ones are installed with one apt-get run when
 * we are root (or have passwordless sudo) on an apt system, i.e. a fresh CI machine; otherwise fails
 * with a message saying what to install.
 */
export async function ensureCommands(
  requirements: Requirement[],
  options: { logFile: string; log: (line: string) => void },
): Promise<void> {
  const missing = requirements.filter((r) => which(r.command) === undefined);
  if (missing.length === 0) return;
  // A binary the user named that is not there: a bad value of its variable (exit 78), nothing to install.
  const named = missing.find((r) => r.explicit);
  if (named !== undefined) {
    throw new StackConfigError(
      named.variable,
      `${named.variable}: ${named.command} is not an executable file: point ${named.variable} at ${named.what} (Debian package ${named.aptPackage}), or unset it to use the one on PATH`,
    );
  }
  const explain = missing.map((r) => `${r.what} (\`${r.command}\`, Debian package ${r.aptPackage})`).join(', ');
  const installable = missing.filter((r) => !r.explicit);
  const apt = which('apt-get');
  // Root installs directly; otherwise passwordless sudo (as on hosted CI runners) is used if present.
  const prefix = isRoot() ? [] : (await canSudo()) ? ['sudo', '-n'] : undefined;
  if (installable.length !== missing.length || apt === undefined || prefix === undefined) {
    throw new Error(
      `missing ${explain}. Install it (e.g. \`sudo apt-get install -y ${missing.map((r) => r.aptPackage).join(' ')}\`) ` +
        `or point ${missing.map((r) => r.variable).join(' / ')} at it (see test/stack/README.md).`,
    );
  }
  const packages = [...new Set(installable.map((r) => r.aptPackage))];
  options.log(`installing ${packages.join(', ')} with apt-get (log: ${options.logFile})`);
  fs.mkdirSync(path.dirname(options.logFile), { recursive: true });
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const [command, ...rest] = [...prefix, ...(prefix.length > 0 ? ['env', 'DEBIAN_FRONTEND=noninteractive'] : []), apt];
  if (command === undefined) throw new Error('unreachable: empty apt-get command');
  await runChecked(command, [...rest, 'update'], { env, logFile: options.logFile, what: 'apt-get update' });
  await runChecked(command, [...rest, 'install', '-y', '--no-install-recommends', ...packages], {
    env,
    logFile: options.logFile,
    what: `apt-get install ${packages.join(' ')}`,
  });
  const still = missing.filter((r) => which(r.command) === undefined);
  if (still.length > 0)
    throw new Error(`apt-get installed ${packages.join(' ')} but ${still[0]?.command} is still missing`);
}

async function canSudo(): Promise<boolean> {
  if (which('sudo') === undefined) return false;
  try {
    return (await run('sudo', ['-n', 'true'], { timeoutMs: 10_000 })).code === 0;
  } catch {
    return false;
  }
}

/** Parses the major version out of `java -version` output ("1.8.0_392" -> 8, "17.0.15" -> 17). */
export function parseJavaMajor(versionOutput: string): number | undefined {
  const m = /version "(\d+)(?:\.(\d+))?[^"]*"/.exec(versionOutput);
  if (m === null) return undefined;
  const first = Number(m[1]);
  return first === 1 && m[2] !== undefined ? Number(m[2]) : first;
}

export async function javaMajorVersion(java: string): Promise<number | undefined> {
  const result = await run(java, ['-version'], { timeoutMs: 30_000 });
  return parseJavaMajor(result.output);
}
