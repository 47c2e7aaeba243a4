import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** What we know about a live pid. */
export interface ProcInfo {
  pid: number;
  /** Opaque start time (Linux: clock ticks since boot from /proc/<pid>/stat; elsewhere: `ps -o lstart`). */
  startTime: string;
  /** argv joined by spaces (as the process currently shows it). */
  cmdline: string;
  /** True for a zombie (exited, not yet reaped): counts as gone. */
  zombie: boolean;
}

/** The identity of a process we started, as stored in state.json. */
export interface OwnedProcess {
  name: string;
  pid: number;
  startTime: string;
  /** Every one of these must occur in the process's command line. */
  markers: string[];
}

/**
 * The fields of a /proc stat line from the state on (field 3 of proc(5)): "pid (comm) state ppid
 * ..." — comm may contain spaces and parentheses, so the split is after the last ')'.
 */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

function readProcLinux(pid: number): ProcInfo | undefined {
  let stat: string;
  let cmdline: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
  const rest = statFields(stat);
  const state = rest[0];
  const startTime = rest[19]; // field 22 of proc(5); `rest` starts at field 3
  if (state === undefined || startTime === undefined) return undefined;
  return {
    pid,
    startTime,
    cmdline: cmdline
      .split('\0')
      .filter((s) => s.length > 0)
      .join(' '),
    zombie: state === 'Z' || state === 'X',
  };
}

function readProcPs(pid: number): ProcInfo | undefined {
  try {
    const out = (field: string) =>
      execFileSync('ps', ['-p', String(pid), '-o', `${field}=`], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      })
        .trim()
        .replace(/\s+/g, ' ');
    const state = out('stat');
    if (state === '') return undefined;
    return { pid, startTime: out('lstart'), cmdline: out('command'), zombie: state.startsWith('Z') };
  } catch {
    return undefined;
  }
}

const HAS_PROC = process.platform === 'linux' && fs.existsSync('/proc/self/stat');

/** Reads pid, start time and command line of a running (or zombie) process; undefined when there is none. */
export function readProcInfo(pid: number): ProcInfo | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return HAS_PROC ? readProcLinux(pid) : readProcPs(pid);
}

/**
 * Whether every thread of `pid` is stopped (SIGSTOP), or none is: `kill` only queues the signal,
 * and a busy multi-threaded process (a JVM) can keep answering for milliseconds after it returns.
 * Undefined when the process is gone; a mix (a stop or a continue under way) is `'partly'`.
 */
export function stopState(pid: number): 'stopped' | 'running' | 'partly' | undefined {
  let states: string[];
  if (HAS_PROC) {
    let tasks: string[];
    try {
      tasks = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      return undefined;
    }
    states = tasks.flatMap((tid) => {
      try {
        return statFields(fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')).slice(0, 1);
      } catch {
        return []; // a thread that just exited
      }
    });
  } else {
    try {
      const stat = execFileSync('ps', ['-p', String(pid), '-o', 'stat='], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
      states = stat === '' ? [] : [stat.slice(0, 1)];
    } catch {
      return undefined;
    }
  }
  if (states.length === 0 || states.some((st) => st === 'Z' || st === 'X')) return undefined;
  const stopped = states.filter((st) => st === 'T' || st === 't').length;
  return stopped === states.length ? 'stopped' : stopped === 0 ? 'running' : 'partly';
}

export type Ownership = 'owned' | 'gone' | 'foreign';

/**
 * Decides whether `proc.pid` is still the process we started: same start time and every marker in
 * its command line. A pid that was recycled by another process is 'foreign' and must never be signalled.
 */
export function checkOwnership(proc: OwnedProcess, info: ProcInfo | undefined = readProcInfo(proc.pid)): Ownership {
  if (info === undefined || info.zombie) return 'gone';
  if (info.startTime !== proc.startTime) return 'foreign';
  return proc.markers.every((m) => info.cmdline.includes(m)) ? 'owned' : 'foreign';
}

export interface SpawnDetachedOptions {
  command: string;
  args: string[];
  cwd: string;
  logFile: string;
  env?: NodeJS.ProcessEnv;
}

export interface SpawnedProcess {
  pid: number;
  startTime: string;
  child: ChildProcess;
  /** Resolves with a description once the process exits (never rejects). */
  exited: Promise<string>;
}

/**
 * Spawns a process in its own process group (detached), stdout and stderr appended to `logFile`,
 * not keeping the parent alive. The caller records pid + start time to recognise it later.
 */
export async function spawnDetached(options: SpawnDetachedOptions): Promise<SpawnedProcess> {
  const fd = fs.openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
  } finally {
    fs.closeSync(fd);
  }
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exited with code ${code}`));
    child.once('error', (err) => resolve(`failed to start: ${err.message}`));
  });
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error(`could not start ${options.command}: ${await exited}`);
  }
  child.unref();
  const info = readProcInfo(pid);
  if (info === undefined) throw new Error(`${options.command} (pid ${pid}) ${await exited} immediately`);
  startedHere.push({ pid, startTime: info.startTime, command: path.basename(options.command) });
  return { pid, startTime: info.startTime, child, exited };
}

const startedHere: Array<{ pid: number; startTime: string; command: string }> = [];

/**
 * Processes this process spawned (detached, so they outlive it) that still run: what an exit
 * without cleanup (a second Ctrl-C) would leave behind.
 */
export function startedByThisProcess(): Array<{ pid: number; command: string }> {
  return startedHere.flatMap(({ pid, startTime, command }) => {
    const info = readProcInfo(pid);
    return info !== undefined && !info.zombie && info.startTime === startTime ? [{ pid, command }] : [];
  });
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal); // detached => the process leads its own group
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitGone(procs: OwnedProcess[], timeoutMs: number): Promise<OwnedProcess[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = procs;
  for (;;) {
    alive = alive.filter((p) => checkOwnership(p) === 'owned');
    if (alive.length === 0 || Date.now() >= deadline) return alive;
    await sleep(100);
  }
}

export interface StopOptions {
  graceMs?: number;
  log?: (line: string) => void;
}

/**
 * Stops exactly the given processes: SIGTERM to each owned process group, SIGKILL after the grace
 * period, then verifies they are gone. Pids that no longer belong to us are left alone.
 * Returns how many processes were signalled (and are now gone).
 */
export async function stopProcesses(procs: OwnedProcess[], options: StopOptions = {}): Promise<number> {
  const log = options.log ?? (() => {});
  const graceMs = options.graceMs ?? 15_000;
  const owned: OwnedProcess[] = [];
  for (const p of procs) {
    const ownership = checkOwnership(p);
    if (ownership === 'owned') owned.push(p);
    else if (ownership === 'gone') log(`${p.name}: pid ${p.pid} is not running`);
    else log(`${p.name}: pid ${p.pid} now belongs to another process; leaving it alone`);
  }
  for (const p of owned) {
    log(`${p.name}: stopping pid ${p.pid}`);
    signalGroup(p.pid, 'SIGTERM');
  }
  let alive = await waitGone(owned, graceMs);
  if (alive.length > 0) {
    for (const p of alive) {
      if (checkOwnership(p) !== 'owned') continue;
      log(`${p.name}: pid ${p.pid} still running after ${graceMs} ms; sending SIGKILL`);
      signalGroup(p.pid, 'SIGKILL');
    }
    alive = await waitGone(alive, 5_000);
  }
  if (alive.length > 0) {
    throw new Error(`could not stop ${alive.map((p) => `${p.name} (pid ${p.pid})`).join(', ')}`);
  }
  return owned.length;
}
