import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@driftline/core';
import { pickFreePort as freePort } from '@driftline/stack';

/** A redis-server of one test's own (the shared stack's Redis is used by every other test: never reconfigure it). */
export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  readonly dir: string;
  /** Kills the server and removes its folder. */
  stop(): void;
}

/**
 * Starts a private redis-server on a free loopback port (`args` appended), no snapshots or AOF
 * unless `args` asks for them. `cluster`: a one-node Redis Cluster holding every slot. `ready` (default
 * true) waits until it answers PING (and has its slots).
 */
export async function privateRedis(
  options: { args?: readonly string[]; port?: number; cluster?: boolean; ready?: boolean } = {},
): Promise<PrivateRedis> {
  const port = options.port ?? (await freePort());
  const cluster = options.cluster === true ? await clusterNodeArgs(port) : [];
  const dir = mkdtempSync(join(tmpdir(), 'private-redis-'));
  // No snapshots or AOF unless `args` asks (redis-server keeps an option's last value).
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'];
  args.push(...(options.args ?? []), ...cluster);
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  const server: PrivateRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: child,
    dir,
    stop: () => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (options.ready === false) return server;
  try {
    await untilAnswers(port, 'PING', ['+PONG', '-NOAUTH'], 10_000);
    if (options.cluster === true) {
      // A retry after a slow first answer finds the slots taken: that is the state wanted.
      await untilAnswers(port, 'CLUSTER ADDSLOTSRANGE 0 16383', ['+OK', '-ERR Slot 0 is already busy'], 10_000);
      // The node says cluster_state:fail for a moment after taking its slots (writes: CLUSTERDOWN).
      await untilAnswers(port, 'CLUSTER INFO', ['$'], 10_000, 'cluster_state:ok');
    }
  } catch (error) {
    server.stop();
    throw error;
  }
  return server;
}

/**
 * The arguments of a one-node Redis Cluster: its cluster bus on a port picked free too. By default
 * the bus listens on the client port + 10000, which the free-port pick never checked: a node whose
 * bus port was taken exited at once ("Failed listening on port … (cluster), aborting"), and the
 * test waited 10 s for a server that was gone (a fresh clone's run).
 */
export async function clusterNodeArgs(clientPort: number): Promise<string[]> {
  let bus = await freePort();
  while (bus === clientPort) bus = await freePort();
  return ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(bus)];
}

/**
 * Sends one inline command until its reply starts with one of `expected` (and holds `including`);
 * refused until the server listens.
 */
async function untilAnswers(
  port: number,
  command: string,
  expected: readonly string[],
  timeoutMs: number,
  including = '',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    last = await inlineCommand(port, command).catch((error: unknown) => String(error));
    if (expected.some((start) => last.startsWith(start)) && last.includes(including)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`private redis-server on port ${port}: "${command}" answered ${JSON.stringify(last)}`);
}

function inlineCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(3_000, () => socket.destroy(new Error('timed out')));
    socket.once('error', reject);
    socket.once('connect', () => socket.write(`${command}\r\n`));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString('utf8'));
    });
  });
}

/** A logger that records the lines of one level (the others are dropped). */
export function recordingLogger(level: 'warn' | 'error', lines: Array<{ obj: object; msg?: string }>): Logger {
  const record = (obj: object, msg?: string) => void lines.push(msg === undefined ? { obj } : { obj, msg });
  const ignore = () => {};
  const logger: Logger = {
    debug: ignore,
    info: ignore,
    warn: level === 'warn' ? record : ignore,
    error: level === 'error' ? record : ignore,
    child: () => logger,
  };
  return logger;
}
