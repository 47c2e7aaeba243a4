import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@driftline/core';
import { freePort } from '@driftline/test-support';

/** A private redis-server (the shared stack's one is used by every other test: never reconfigure it). */
export async function privateRedis(
  args: string[],
  port?: number,
): Promise<{ url: string; port: number; process: ChildProcess; dir: string }> {
  const listen = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'private-redis-'));
  const child = spawn('redis-server', ['--port', String(listen), '--bind', '127.0.0.1', '--dir', dir, ...args], {
    stdio: 'ignore',
  });
  return { url: `redis://127.0.0.1:${listen}`, port: listen, process: child, dir };
}

/** A logger that records the lines of one level (the others are dropped). */
export function recordingLogger(level: 'warn' | 'error', lines: Array<{ obj: object; msg?: string }>): Logger {
  const record = (obj: object, msg?: string) => void lines.push(msg === undefined ? { obj } : { obj, msg });
  const ignore = () => {};
  const logger = {
    debug: ignore,
    info: ignore,
    warn: level === 'warn' ? record : ignore,
    error: level === 'error' ? record : ignore,
    child: () => logger,
  };
  return logger;
}
