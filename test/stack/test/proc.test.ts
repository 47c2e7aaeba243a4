import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireLock } from '../src/lock.js';
import { checkOwnership, readProcInfo, spawnDetached, stopProcesses, stopState } from '../src/proc.js';
import { stackDown, stackRelease, stackStatus } from '../src/stack.js';
import { readState, writeState } from '../src/state.js';
import { processSandbox } from './support.js';

const { root, sleeper, record, track } = processSandbox('driftline-stack-proc-');

describe('process identity', () => {
  it('reads start time and command line of a live process', async () => {
    const p = await sleeper('driftline-test-identity');
    const info = readProcInfo(p.pid);
    expect(info?.startTime).toBe(p.startTime);
    expect(info?.cmdline).toContain('driftline-test-identity');
    expect(info?.zombie).toBe(false);
  });

  it('tells when every thread of a process has stopped (SIGSTOP) and when none has', async () => {
    const p = await sleeper('driftline-test-stop'); // node: several threads
    const settled = async (wanted: string) => {
      const deadline = Date.now() + 5_000;
      while (stopState(p.pid) !== wanted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      return stopState(p.pid);
    };
    expect(stopState(p.pid)).toBe('running');
    process.kill(p.pid, 'SIGSTOP');
    expect(await settled('stopped')).toBe('stopped');
    process.kill(p.pid, 'SIGCONT');
    expect(await settled('running')).toBe('running');
    process.kill(p.pid, 'SIGKILL');
    await p.exited;
    expect(stopState(p.pid)).toBeUndefined();
  });

  it('recognises our process and rejects a recycled pid', async () => {
    const p = await sleeper('driftline-test-owner');
    const base = { name: 'x', pid: p.pid, startTime: p.startTime, markers: ['driftline-test-owner'] };
    expect(checkOwnership(base)).toBe('owned');
    expect(checkOwnership({ ...base, startTime: '1' })).toBe('foreign'); // same pid, started at another time
    expect(checkOwnership({ ...base, markers: ['some-other-marker'] })).toBe('foreign');
    expect(checkOwnership({ ...base, pid: 2 ** 22 + 7 })).toBe('gone');
  });

  it('never signals a pid that is not ours', async () => {
    const p = await sleeper('driftline-test-foreign');
    const stopped = await stopProcesses([
      { name: 'x', pid: p.pid, startTime: '1', markers: ['driftline-test-foreign'] },
    ]);
    expect(stopped).toBe(0);
    expect(checkOwnership({ name: 'x', pid: p.pid, startTime: p.startTime, markers: [] })).toBe('owned');
  });

  it('stops a process that ignores SIGTERM with SIGKILL after the grace period', async () => {
    const p = track(
      await spawnDetached({
        command: process.execPath,
        args: [
          '-e',
          "process.on('SIGTERM', () => {}); console.log('armed'); setInterval(() => {}, 1 << 30)",
          'driftline-test-stubborn',
        ],
        cwd: root,
        logFile: path.join(root, 'stubborn.log'),
      }),
    );
    // Wait until it has installed its SIGTERM handler.
    const deadline = Date.now() + 10_000;
    while (!fs.readFileSync(path.join(root, 'stubborn.log'), 'utf8').includes('armed')) {
      if (Date.now() > deadline) throw new Error('stubborn child did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    const lines: string[] = [];
    const stopped = await stopProcesses(
      [{ name: 'stubborn', pid: p.pid, startTime: p.startTime, markers: ['driftline-test-stubborn'] }],
      { graceMs: 500, log: (l) => lines.push(l) },
    );
    expect(stopped).toBe(1);
    expect(lines.join('\n')).toMatch(/SIGKILL/);
    // An exiting process loses its command line before it turns zombie: poll until it is gone.
    await expect
      .poll(() => checkOwnership({ name: 'x', pid: p.pid, startTime: p.startTime, markers: [] }), { timeout: 5_000 })
      .toBe('gone');
  });
});

describe('stackDown', () => {
  it('kills exactly the processes recorded in state.json and removes the state', async () => {
    const stateDir = path.join(root, 'stack');
    const ours = await sleeper('driftline-test-ours');
    const bystander = await sleeper('driftline-test-bystander');
    const stateFile = path.join(stateDir, 'state.json');
    writeState(stateFile, {
      version: 1,
      stackId: 'test',
      createdAt: new Date().toISOString(),
      readyAt: new Date().toISOString(),
      endpoints: {},
      processes: [
        record('kafka', ours, 'driftline-test-ours'),
        // The bystander's pid with another start time: what a recycled pid looks like.
        record('redis', { pid: bystander.pid, startTime: '1' }, 'driftline-test-bystander'),
      ],
    });
    const status = await stackStatus({ stateDir });
    expect(status.processes).toEqual([
      { name: 'kafka', pid: ours.pid, alive: true },
      { name: 'redis', pid: bystander.pid, alive: false },
    ]);
    expect(status.running).toBe(false);

    const result = await stackDown({ stateDir, graceMs: 5_000 });
    expect(result.stopped).toBe(1);
    expect(checkOwnership({ name: 'x', pid: ours.pid, startTime: ours.startTime, markers: [] })).toBe('gone');
    expect(checkOwnership({ name: 'x', pid: bystander.pid, startTime: bystander.startTime, markers: [] })).toBe(
      'owned',
    );
    expect(readState(stateFile)).toBeUndefined();
    expect(await stackDown({ stateDir })).toEqual({ stopped: 0 });
  });
});

describe('stackRelease (test-run leases)', () => {
  it('stops a test-started stack only when the last live test run releases it', async () => {
    const stateDir = path.join(root, 'lease');
    const stateFile = path.join(stateDir, 'state.json');
    const service = await sleeper('driftline-test-leased');
    const otherRun = await sleeper('driftline-test-other-run');
    const me = readProcInfo(process.pid);
    if (me === undefined) throw new Error('cannot read own process info');
    writeState(stateFile, {
      version: 1,
      stackId: 'lease',
      createdAt: new Date().toISOString(),
      readyAt: new Date().toISOString(),
      startedBy: 'test',
      endpoints: {},
      processes: [record('redis', service, 'driftline-test-leased')],
      leases: [
        { pid: process.pid, startTime: me.startTime },
        { pid: otherRun.pid, startTime: otherRun.startTime },
        { pid: 2 ** 22 + 7, startTime: '1' }, // a test run that died
      ],
    });
    // Another run still holds a lease: only our lease (and the dead one) go away.
    expect(await stackRelease({ stateDir })).toEqual({ stopped: 0 });
    expect(readState(stateFile)?.leases).toEqual([{ pid: otherRun.pid, startTime: otherRun.startTime }]);
    expect(checkOwnership({ name: 'x', pid: service.pid, startTime: service.startTime, markers: [] })).toBe('owned');

    // The other run is gone: the last release stops the stack.
    await stopProcesses([{ name: 'run', pid: otherRun.pid, startTime: otherRun.startTime, markers: [] }]);
    expect(await stackRelease({ stateDir, graceMs: 5_000 })).toEqual({ stopped: 1 });
    expect(checkOwnership({ name: 'x', pid: service.pid, startTime: service.startTime, markers: [] })).toBe('gone');
    expect(readState(stateFile)).toBeUndefined();
  });

  it('never stops a stack started with `stack up`', async () => {
    const stateDir = path.join(root, 'lease-cli');
    const stateFile = path.join(stateDir, 'state.json');
    const service = await sleeper('driftline-test-cli-started');
    writeState(stateFile, {
      version: 1,
      stackId: 'cli',
      createdAt: new Date().toISOString(),
      readyAt: new Date().toISOString(),
      startedBy: 'cli',
      endpoints: {},
      processes: [record('redis', service, 'driftline-test-cli-started')],
    });
    expect(await stackRelease({ stateDir })).toEqual({ stopped: 0 });
    expect(checkOwnership({ name: 'x', pid: service.pid, startTime: service.startTime, markers: [] })).toBe('owned');
    expect(await stackDown({ stateDir, graceMs: 5_000 })).toEqual({ stopped: 1 });
  });

  it('a stack a DRIFTLINE_STACK_KEEP run leaves running is left running by later plain runs too (found by a review)', async () => {
    const stateDir = path.join(root, 'lease-keep');
    const stateFile = path.join(stateDir, 'state.json');
    const service = await sleeper('driftline-test-kept');
    const me = readProcInfo(process.pid);
    if (me === undefined) throw new Error('cannot read own process info');
    const lease = { pid: process.pid, startTime: me.startTime };
    writeState(stateFile, {
      version: 1,
      stackId: 'keep',
      createdAt: new Date().toISOString(),
      readyAt: new Date().toISOString(),
      startedBy: 'test', // started by the KEEP run's global setup
      endpoints: {},
      processes: [record('redis', service, 'driftline-test-kept')],
      leases: [lease],
    });
    expect(await stackRelease({ stateDir, keep: true })).toEqual({ stopped: 0 });
    // The next plain run reuses it (stackUp({ testRun: true }) adds its lease) and tears down.
    const kept = readState(stateFile);
    if (kept === undefined) throw new Error('the kept stack lost its state');
    writeState(stateFile, { ...kept, leases: [lease] });
    expect(await stackRelease({ stateDir, graceMs: 5_000 })).toEqual({ stopped: 0 });
    expect(checkOwnership({ name: 'x', pid: service.pid, startTime: service.startTime, markers: [] })).toBe('owned');
    expect(await stackDown({ stateDir, graceMs: 5_000 })).toEqual({ stopped: 1 });
  });

  it('KEEP wins: a stack another live run started is left running by that run too, when it ends last', async () => {
    const stateDir = path.join(root, 'lease-keep-shared');
    const stateFile = path.join(stateDir, 'state.json');
    const service = await sleeper('driftline-test-kept-shared');
    const starter = await sleeper('driftline-test-starting-run'); // run B: started the stack, still running
    const me = readProcInfo(process.pid);
    if (me === undefined) throw new Error('cannot read own process info');
    const myLease = { pid: process.pid, startTime: me.startTime };
    const starterLease = { pid: starter.pid, startTime: starter.startTime };
    writeState(stateFile, {
      version: 1,
      stackId: 'keep-shared',
      createdAt: new Date().toISOString(),
      readyAt: new Date().toISOString(),
      startedBy: 'test', // started by run B's global setup
      endpoints: {},
      processes: [record('redis', service, 'driftline-test-kept-shared')],
      leases: [starterLease, myLease],
    });
    // This run (KEEP) ends first: B's lease stays, and the stack is now kept.
    expect(await stackRelease({ stateDir, keep: true })).toEqual({ stopped: 0 });
    const kept = readState(stateFile);
    expect({ startedBy: kept?.startedBy, leases: kept?.leases }).toEqual({ startedBy: 'cli', leases: [starterLease] });
    // B ends last (its release, with no other live lease): the stack stays.
    if (kept === undefined) throw new Error('the kept stack lost its state');
    writeState(stateFile, { ...kept, leases: [myLease] });
    expect(await stackRelease({ stateDir, graceMs: 5_000 })).toEqual({ stopped: 0 });
    expect(checkOwnership({ name: 'x', pid: service.pid, startTime: service.startTime, markers: [] })).toBe('owned');
    await stopProcesses([{ name: 'run', pid: starter.pid, startTime: starter.startTime, markers: [] }]);
    expect(await stackDown({ stateDir, graceMs: 5_000 })).toEqual({ stopped: 1 });
  });
});

describe('lock', () => {
  it('a stale lock another waiter took over first is not an error: the loop takes the free path (found by a review)', async () => {
    const lockDir = path.join(root, 'gone-first', '.lock');
    fs.mkdirSync(lockDir, { recursive: true });
    fs.writeFileSync(path.join(lockDir, 'owner.json'), '{"pid": 12'); // half-written: no owner
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(lockDir, old, old);
    // Another waiter finishes its takeover just before this one gets the takeover mark.
    const mkdir = fs.mkdirSync;
    let once = true;
    fs.mkdirSync = ((p: fs.PathLike, o?: fs.MakeDirectoryOptions) => {
      if (once && String(p).endsWith('.takeover')) {
        once = false;
        fs.rmSync(lockDir, { recursive: true, force: true });
      }
      return mkdir(p, o);
    }) as typeof fs.mkdirSync;
    try {
      const release = await acquireLock(lockDir, { timeoutMs: 2_000 });
      release();
    } finally {
      fs.mkdirSync = mkdir;
    }
    expect(fs.readdirSync(path.dirname(lockDir))).toEqual([]);
  });

  it('serialises holders and takes over a lock whose owner died', async () => {
    const lockDir = path.join(root, 'lock-test', '.lock');
    const release = await acquireLock(lockDir, { timeoutMs: 1_000 });
    await expect(acquireLock(lockDir, { timeoutMs: 300 })).rejects.toThrow(/timed out/);
    release();
    const again = await acquireLock(lockDir, { timeoutMs: 1_000 });
    again();

    // A lock left behind by a process that no longer exists.
    fs.mkdirSync(lockDir, { recursive: true });
    fs.writeFileSync(path.join(lockDir, 'owner.json'), JSON.stringify({ pid: 2 ** 22 + 7, startTime: '1' }));
    const taken = await acquireLock(lockDir, { timeoutMs: 1_000 });
    taken();
    expect(fs.existsSync(lockDir)).toBe(false);
  });

  it('six processes taking over one stale lock at once hold it one at a time, none failing (found by a review)', async () => {
    const { spawn } = await import('node:child_process');
    const lockModule = new URL('../src/lock.ts', import.meta.url).href;
    for (let trial = 0; trial < 3; trial++) {
      const dir = path.join(root, `race-${trial}`);
      fs.mkdirSync(path.join(dir, '.lock'), { recursive: true });
      fs.writeFileSync(path.join(dir, '.lock', 'owner.json'), JSON.stringify({ pid: 2 ** 22 + 7, startTime: '1' }));
      const startAt = Date.now() + 1_500;
      const script = `
        const { acquireLock } = await import(${JSON.stringify(lockModule)});
        const fs = await import('node:fs');
        while (Date.now() < ${startAt}) {}
        const release = await acquireLock(${JSON.stringify(path.join(dir, '.lock'))}, { timeoutMs: 30000 });
        const t0 = Date.now();
        await new Promise((r) => setTimeout(r, 150));
        const t1 = Date.now(); // before the release: the next holder may start right after it
        release();
        fs.appendFileSync(${JSON.stringify(path.join(dir, 'log'))}, t0 + ' ' + t1 + '\\n');`;
      const codes = await Promise.all(
        Array.from(
          { length: 6 },
          () =>
            new Promise<number | null>((resolve) => {
              const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
                stdio: 'ignore',
              });
              child.once('exit', resolve);
            }),
        ),
      );
      expect(codes).toEqual([0, 0, 0, 0, 0, 0]);
      const held = fs
        .readFileSync(path.join(dir, 'log'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(' ').map(Number) as [number, number])
        .sort((a, b) => a[0] - b[0]);
      expect(held).toHaveLength(6);
      for (let i = 1; i < held.length; i++) expect(held[i]![0]).toBeGreaterThanOrEqual(held[i - 1]![1]);
      expect(fs.readdirSync(dir).filter((n) => n.startsWith('.lock.'))).toEqual([]); // nothing left aside
    }
  }, 60_000);
});
