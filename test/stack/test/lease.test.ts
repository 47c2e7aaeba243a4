import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultRepoRoot } from '../src/config.js';
import { checkOwnership, startedByThisProcess } from '../src/proc.js';
import { decideRecordedStack } from '../src/recorded.js';
import { stackUp } from '../src/stack.js';
import { type ProcessRecord, readState, type StackState, writeState } from '../src/state.js';
import { processSandbox } from './support.js';

const { root, sleeper, record } = processSandbox('driftline-stack-lease-');

/** Runs `fn` with DRIFTLINE_STACK_JAVA pointing nowhere: a config no new stack can start with. */
async function withBrokenJava<T>(fn: () => Promise<T>): Promise<T> {
  const before = process.env.DRIFTLINE_STACK_JAVA;
  process.env.DRIFTLINE_STACK_JAVA = '/nonexistent/java';
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.DRIFTLINE_STACK_JAVA;
    else process.env.DRIFTLINE_STACK_JAVA = before;
  }
}

/** A recorded, once-ready stack whose kafka died and whose redis (a sleeper) still runs. */
async function halfDeadStack(dir: string, leases: StackState['leases']) {
  const redis = await sleeper(`driftline-test-lease-redis-${path.basename(dir)}`);
  const dead = await sleeper(`driftline-test-lease-kafka-${path.basename(dir)}`);
  process.kill(dead.pid, 'SIGKILL');
  await dead.exited;
  const state: StackState = {
    version: 1,
    stackId: 'lease',
    createdAt: new Date().toISOString(),
    readyAt: new Date().toISOString(),
    startedBy: 'test',
    leases,
    endpoints: {
      kafkaBrokers: ['127.0.0.1:1'],
      schemaRegistryUrl: 'http://127.0.0.1:1/apis/ccompat/v7',
      redisUrl: 'redis://127.0.0.1:1',
    },
    processes: [
      record('kafka', dead, `driftline-test-lease-kafka-${path.basename(dir)}`),
      record('redis', redis, `driftline-test-lease-redis-${path.basename(dir)}`),
    ],
  };
  writeState(path.join(dir, 'state.json'), state);
  return { redis: state.processes[1] as ProcessRecord, state };
}

describe('the lease rule (decideRecordedStack)', () => {
  const base = { stateDir: '/s', problem: undefined, leasedBy: [], portChanges: [], anyRunning: true };

  it('reuses a healthy stack and replaces an unhealthy one nobody else uses', () => {
    expect(decideRecordedStack(base)).toEqual({ kind: 'reuse' });
    expect(decideRecordedStack({ ...base, problem: 'redis: not answering' }).kind).toBe('replace');
  });

  it('never replaces a stack other live runs hold leases on: one line naming them', () => {
    const action = decideRecordedStack({ ...base, problem: 'redis: not answering', leasedBy: [4242] });
    expect(action.kind).toBe('refuse');
    if (action.kind !== 'refuse') return;
    expect(action.message).toContain('redis: not answering');
    expect(action.message).toContain('4242');
    expect(action.message).not.toContain('\n');
  });

  it('replaces a stack none of whose services runs, whoever holds a lease: nothing is left to protect (found by a review)', () => {
    const dead = { ...base, problem: 'kafka (pid 4000001) is not running', leasedBy: [4242], anyRunning: false };
    expect(decideRecordedStack(dead)).toMatchObject({ kind: 'replace' });
    const refused = decideRecordedStack({ ...dead, stateDir: '/tmp/x y', anyRunning: true });
    expect(refused.kind === 'refuse' ? refused.message : '').toContain(
      "DRIFTLINE_STACK_DIR='/tmp/x y' pnpm -s stack down",
    );
  });

  it('restarts on a changed fixed port only when nobody else uses the stack, else says it is ignored', () => {
    const change = 'DRIFTLINE_STACK_REDIS_PORT=7000 but the running stack uses 6379';
    expect(decideRecordedStack({ ...base, portChanges: [change] }).kind).toBe('replace');
    const leased = decideRecordedStack({ ...base, portChanges: [change], leasedBy: [4242] });
    expect(leased.kind).toBe('reuse');
    expect(leased.kind === 'reuse' ? leased.note : '').toContain('DRIFTLINE_STACK_REDIS_PORT=7000');
  });
});

describe('stackUp on a recorded stack that is not fully running', () => {
  it('leaves a stack other live runs lease alone and says so in one line', async () => {
    const dir = fs.mkdtempSync(path.join(root, 'leased-'));
    const user = await sleeper('driftline-test-lease-user');
    const { redis } = await halfDeadStack(dir, [{ pid: user.pid, startTime: user.startTime }]);
    const before = fs.readFileSync(path.join(dir, 'state.json'), 'utf8');
    const error = await withBrokenJava(() => stackUp({ stateDir: dir, cacheDir: path.join(root, 'cache') })).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    expect(error?.message).toMatch(new RegExp(`kafka .*not running.*pid ${user.pid} still use it`));
    expect(checkOwnership(redis)).toBe('owned');
    expect(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')).toBe(before);
  });

  it('checks what a new stack needs before stopping anything of the old one', async () => {
    const dir = fs.mkdtempSync(path.join(root, 'badconfig-'));
    const { redis } = await halfDeadStack(dir, []);
    // The error names the variable to fix, not a DRIFTLINE_STACK_* pattern (found by a review).
    await expect(withBrokenJava(() => stackUp({ stateDir: dir, cacheDir: path.join(root, 'cache') }))).rejects.toThrow(
      /\/nonexistent\/java.*point DRIFTLINE_STACK_JAVA\b/,
    );
    expect(checkOwnership(redis)).toBe('owned');
    expect(readState(path.join(dir, 'state.json'))?.processes).toHaveLength(2);
  });
});

describe('stackUp with a fixed port another process holds (found by a review)', () => {
  it('fails naming the variable before stopping anything of the recorded stack', async () => {
    const dir = fs.mkdtempSync(path.join(root, 'taken-port-'));
    const { redis } = await halfDeadStack(dir, []);
    const listener = net.createServer();
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const port = (listener.address() as net.AddressInfo).port;
    const before = process.env.DRIFTLINE_STACK_REDIS_PORT;
    process.env.DRIFTLINE_STACK_REDIS_PORT = String(port);
    try {
      // The real cache: Kafka's jars are there, so no Maven is needed and only the port can fail.
      await expect(
        stackUp({ stateDir: dir, cacheDir: path.join(defaultRepoRoot(), '.cache', 'stack') }),
      ).rejects.toThrow(`port ${port} for redis (DRIFTLINE_STACK_REDIS_PORT=${port}) is already in use`);
    } finally {
      if (before === undefined) delete process.env.DRIFTLINE_STACK_REDIS_PORT;
      else process.env.DRIFTLINE_STACK_REDIS_PORT = before;
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    }
    expect(checkOwnership(redis)).toBe('owned');
    expect(readState(path.join(dir, 'state.json'))?.processes).toHaveLength(2);
  });
});

describe('startedByThisProcess', () => {
  it('lists what this process spawned that still runs, and drops what exited', async () => {
    const p = await sleeper('driftline-test-started-here');
    expect(startedByThisProcess().map((s) => s.pid)).toContain(p.pid);
    process.kill(p.pid, 'SIGKILL');
    await p.exited;
    expect(startedByThisProcess().map((s) => s.pid)).not.toContain(p.pid);
  });
});

describe('stackUp interrupted (Ctrl-C of the demo)', () => {
  it('rejects with the abort reason before starting anything and leaves no lock behind', async () => {
    const dir = fs.mkdtempSync(path.join(root, 'aborted-'));
    const reason = new Error('Ctrl-C');
    await expect(
      withBrokenJava(() =>
        stackUp({ stateDir: dir, cacheDir: path.join(root, 'cache'), signal: AbortSignal.abort(reason) }),
      ),
    ).rejects.toBe(reason);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
