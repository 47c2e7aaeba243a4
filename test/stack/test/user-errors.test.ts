import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { withCacheLock } from '../src/cache.js';
import { StackConfigError } from '../src/config.js';
import { dirError, StackDiskFullError } from '../src/dir-error.js';
import { serviceError, stackStatus, stackUp } from '../src/stack.js';
import { ensureCommands } from '../src/system.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../../..');

const dirs: string[] = [];
function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'driftline-stack-errors-'));
  dirs.push(dir);
  return dir;
}
const savedEnv = { ...process.env };
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
  Object.assign(process.env, savedEnv);
});

/** A folder that cannot be created: its parent is a file (ENOTDIR). Tests run as root, whom chmod does not stop. */
function unusableDir(): string {
  const file = path.join(tmpDir(), 'a-file');
  fs.writeFileSync(file, '');
  return path.join(file, 'dir');
}

/** An executable that prints `output` on stderr, as `java -version` does. */
function fakeBinary(name: string, output = ''): string {
  const file = path.join(tmpDir(), name);
  fs.writeFileSync(file, `#!/bin/sh\necho '${output}' >&2\n`);
  fs.chmodSync(file, 0o755);
  return file;
}

const rejection = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: unknown) => err,
  );

describe('file-system errors in the stack folders name the folder and its variable, in one line (found by a review)', () => {
  it('a cache dir that cannot be written: a StackConfigError naming DRIFTLINE_STACK_CACHE_DIR', async () => {
    const cacheDir = unusableDir();
    const err = await rejection(withCacheLock(cacheDir, 'maven', {}, async () => 'filled'));
    expect(err).toBeInstanceOf(StackConfigError);
    expect((err as StackConfigError).variable).toBe('DRIFTLINE_STACK_CACHE_DIR');
    expect((err as Error).message).toBe(
      `DRIFTLINE_STACK_CACHE_DIR: cannot write in the stack's cache dir ${cacheDir} (ENOTDIR: not a directory): point DRIFTLINE_STACK_CACHE_DIR at a writable folder`,
    );
    expect((err as Error).message).not.toContain('\n');
  });

  it('a state dir that cannot be written: stackUp says so naming DRIFTLINE_STACK_DIR', async () => {
    const err = await rejection(stackUp({ stateDir: unusableDir(), cacheDir: tmpDir() }));
    expect(err).toBeInstanceOf(StackConfigError);
    expect((err as StackConfigError).variable).toBe('DRIFTLINE_STACK_DIR');
    expect((err as Error).message).toMatch(/^DRIFTLINE_STACK_DIR: cannot write in the stack's state dir .* \(ENOTDIR/);
    expect((err as Error).message).not.toContain('\n');
  });

  it('a state dir that is a file: stackStatus (`stack status`) says so naming DRIFTLINE_STACK_DIR', async () => {
    const file = path.join(tmpDir(), 'a-file');
    fs.writeFileSync(file, '');
    const err = await rejection(stackStatus({ stateDir: file }));
    expect(err).toBeInstanceOf(StackConfigError);
    expect((err as Error).message).toMatch(/^DRIFTLINE_STACK_DIR: cannot write in the stack's state dir .* \(ENOTDIR/);
  });

  it('a full disk (a real ENOSPC: a write to /dev/full has no path) names the folder and its variable', () => {
    let enospc: unknown;
    try {
      fs.writeFileSync('/dev/full', 'x');
    } catch (err) {
      enospc = err;
    }
    expect((enospc as NodeJS.ErrnoException).code).toBe('ENOSPC');
    const err = dirError(enospc, { what: 'state dir', dir: '/srv/stack', variable: 'DRIFTLINE_STACK_DIR' });
    expect(err).toBeInstanceOf(StackDiskFullError);
    expect((err as Error).message).toBe(
      "no space left on the stack's state dir /srv/stack (DRIFTLINE_STACK_DIR; ENOSPC: no space left on device): free some space, or point DRIFTLINE_STACK_DIR at a folder on another disk",
    );
    // Neither another folder's error nor a pathless kill error is taken for the folder's.
    const other = Object.assign(new Error('EACCES: permission denied, open /etc/x'), {
      code: 'EACCES',
      path: '/etc/x',
    });
    expect(dirError(other, { what: 'state dir', dir: '/srv/stack', variable: 'DRIFTLINE_STACK_DIR' })).toBe(other);
    const kill = Object.assign(new Error('kill EPERM'), { code: 'EPERM', syscall: 'kill' });
    expect(dirError(kill, { what: 'state dir', dir: '/srv/stack', variable: 'DRIFTLINE_STACK_DIR' })).toBe(kill);
  });

  it('a service whose log says its disk is full: a hint naming the state dir and DRIFTLINE_STACK_DIR', () => {
    const stateDir = tmpDir();
    const logFile = path.join(stateDir, 'logs', 'schema-registry.log');
    fs.mkdirSync(path.dirname(logFile));
    // The registry's H2, as seen with 160 KB free: the words are deep in a stack trace.
    fs.writeFileSync(
      logFile,
      'org.h2.mvstore.MVStoreException: Could not write to position 8192 [2.3.232/2]\n' +
        '\tat org.h2.mvstore.FileStore.writeFully(FileStore.java:1)\n' +
        'Caused by: java.io.IOException: No space left on device\n\tat java.base/sun.nio.ch.FileDispatcherImpl.pwrite0(Native Method)\n',
    );
    const message = serviceError('schema-registry', 'exited with code 1 before becoming ready', logFile).message;
    expect(message.split('\n').at(-1)).toBe(
      `hint: no space left on ${stateDir} (its data and logs); free some space, or point DRIFTLINE_STACK_DIR at a folder on another disk.`,
    );
  });
});

describe('an explicit binary that is missing or too old is a bad DRIFTLINE_STACK_* value: exit 78 (found by a review)', () => {
  it('ensureCommands: a StackConfigError naming the variable, nothing installed', async () => {
    for (const [variable, what, aptPackage] of [
      ['DRIFTLINE_STACK_JAVA', 'Java 17+', 'openjdk-17-jre-headless'],
      ['DRIFTLINE_STACK_REDIS_SERVER', 'redis-server', 'redis-server'],
      ['DRIFTLINE_STACK_MVN', 'Maven', 'maven'],
    ] as const) {
      const command = path.join(tmpDir(), 'missing', 'bin', 'x');
      const err = await rejection(
        ensureCommands([{ what, command, aptPackage, explicit: true, variable }], {
          logFile: path.join(tmpDir(), 'apt.log'),
          log: () => {},
        }),
      );
      expect(err).toBeInstanceOf(StackConfigError);
      expect((err as StackConfigError).variable).toBe(variable);
      expect((err as Error).message).toBe(
        `${variable}: ${command} is not an executable file: point ${variable} at ${what} (Debian package ${aptPackage}), or unset it to use the one on PATH`,
      );
    }
  });

  it('stackUp: an explicit Java older than 17 is a StackConfigError naming DRIFTLINE_STACK_JAVA', async () => {
    process.env.DRIFTLINE_STACK_JAVA = fakeBinary('java', 'openjdk version "11.0.22" 2024-01-16');
    // Explicit, existing stand-ins: nothing is looked up or installed for them.
    process.env.DRIFTLINE_STACK_REDIS_SERVER = fakeBinary('redis-server');
    process.env.DRIFTLINE_STACK_MVN = fakeBinary('mvn');
    const err = await rejection(stackUp({ stateDir: tmpDir(), cacheDir: tmpDir() }));
    expect(err).toBeInstanceOf(StackConfigError);
    expect((err as StackConfigError).variable).toBe('DRIFTLINE_STACK_JAVA');
    expect((err as Error).message).toMatch(/^DRIFTLINE_STACK_JAVA: .*java is Java 11; Kafka .* need Java 17\+$/);
  });

  it('`pnpm -s stack up` with a missing DRIFTLINE_STACK_JAVA: one line and exit 78', async () => {
    const env = {
      ...process.env,
      DRIFTLINE_STACK_DIR: tmpDir(),
      DRIFTLINE_STACK_CACHE_DIR: tmpDir(),
      DRIFTLINE_STACK_JAVA: '/opt/nojava/bin/java',
    };
    const result = await run(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', 'test/stack/src/cli.ts', 'up'],
      { cwd: root, env },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(result.code).toBe(78);
    expect(result.stderr).toBe(
      '[stack] DRIFTLINE_STACK_JAVA: /opt/nojava/bin/java is not an executable file: point DRIFTLINE_STACK_JAVA at Java 17+ (Debian package openjdk-17-jre-headless), or unset it to use the one on PATH\n',
    );
  }, 60_000); // a node + tsx start: seconds on a loaded machine
});
