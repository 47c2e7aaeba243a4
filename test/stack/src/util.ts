import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** A temp name beside `file` that no other process or call uses; `<file>.tmp-` starts every one. */
export function uniqueTemp(file: string, suffix: string): string {
  return `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}.${suffix}`;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** An error's message, plus its cause's (fetch says only "fetch failed" and puts ECONNREFUSED in the cause). */
export function errorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause: unknown = err.cause;
  if (cause instanceof Error && cause.message !== '' && !err.message.includes(cause.message)) {
    return `${err.message}: ${cause.message}`;
  }
  return err.message;
}

/** The last `lines` lines of a (possibly large) text file; '' when missing. */
export function tailFile(file: string, lines = 40): string {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, size - length);
    return buf
      .toString('utf8')
      .split('\n')
      .slice(-lines - 1)
      .join('\n')
      .trimEnd();
  } finally {
    fs.closeSync(fd);
  }
}

/** Resolves a command the way a shell would (PATH lookup); undefined when not found/executable. */
export function which(command: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const isExecutable = (file: string) => {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return fs.statSync(file).isFile();
    } catch {
      return false;
    }
  };
  if (command.includes('/')) return isExecutable(command) ? path.resolve(command) : undefined;
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, command);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  logFile?: string;
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
}

export interface RunResult {
  code: number | null;
  output: string;
}

/** Runs a command to completion, capturing stdout+stderr (also appended to `logFile` if given). */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    options.signal?.throwIfAborted();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Ctrl-C of the caller: the command is killed, not left running on its own.
      ...(options.signal === undefined ? {} : { signal: options.signal, killSignal: 'SIGKILL' as const }),
    });
    const chunks: Buffer[] = [];
    const log = options.logFile === undefined ? undefined : fs.createWriteStream(options.logFile, { flags: 'a' });
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      log?.write(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            child.kill('SIGKILL');
          }, options.timeoutMs);
    child.once('error', (err) => {
      if (timer) clearTimeout(timer);
      log?.end();
      if (options.signal?.aborted) reject(options.signal.reason);
      else reject(new Error(`could not run ${command}: ${err.message}`));
    });
    child.once('close', (code) => {
      if (timer) clearTimeout(timer);
      log?.end();
      resolve({ code, output: Buffer.concat(chunks).toString('utf8') });
    });
  });
}

/** Like `run` but throws (with the output's tail) unless the exit code is 0. */
export async function runChecked(
  command: string,
  args: string[],
  options: RunOptions & { what?: string } = {},
): Promise<string> {
  const result = await run(command, args, options);
  options.signal?.throwIfAborted();
  if (result.code !== 0) {
    const tail = result.output.trimEnd().split('\n').slice(-30).join('\n');
    const where = options.logFile === undefined ? '' : ` (full output: ${options.logFile})`;
    throw new Error(
      `${options.what ?? `${command} ${args.join(' ')}`} failed with exit code ${result.code}${where}:\n${tail}`,
    );
  }
  return result.output;
}

/**
 * Downloads `url` to `dest` (via a temp file of its own, renamed when complete), retrying a few
 * times. When `sha1` is given, the download is checked against it. Callers hold the cache lock
 * (withCacheLock); the unique temp name keeps even an unlocked caller from writing into another's.
 */
export async function download(
  url: string,
  dest: string,
  options: { sha1?: string; attempts?: number; signal?: AbortSignal | undefined } = {},
) {
  const attempts = options.attempts ?? 3;
  const part = uniqueTemp(dest, 'part');
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    options.signal?.throwIfAborted();
    try {
      const timeout = AbortSignal.timeout(15 * 60_000);
      const res = await fetch(url, {
        signal: options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]),
      });
      if (!res.ok || res.body === null) throw new Error(`GET ${url}: HTTP ${res.status}`);
      const hash = crypto.createHash('sha1');
      await pipeline(
        Readable.fromWeb(res.body),
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            hash.update(chunk);
            yield chunk;
          }
        },
        fs.createWriteStream(part),
      );
      const actual = hash.digest('hex');
      if (options.sha1 !== undefined && actual !== options.sha1.toLowerCase()) {
        throw new Error(`checksum mismatch for ${url}: expected sha1 ${options.sha1}, got ${actual}`);
      }
      fs.renameSync(part, dest);
      return;
    } catch (err) {
      lastError = err;
      fs.rmSync(part, { force: true });
      options.signal?.throwIfAborted();
      if (attempt < attempts) await sleep(1000 * attempt);
    }
  }
  throw new Error(`download failed after ${attempts} attempts: ${errorMessage(lastError)}`);
}

/** GETs a small text resource (e.g. a .sha1 file), with retries. */
export async function fetchText(url: string, attempts = 3): Promise<string> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
      if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
      return await res.text();
    } catch (err) {
      lastError = err;
      if (attempt < attempts) await sleep(1000 * attempt);
    }
  }
  throw new Error(errorMessage(lastError));
}

export function formatMs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
