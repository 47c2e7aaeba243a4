// The processes of the run, each `driftline <args>` (`run <services>`, `clickhouse serve`) in its own process group.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';

/** How a service process is started: the bundle (`node bin/driftline.js`) or the sources through tsx. */
export interface Launcher {
  readonly command: string;
  readonly args: readonly string[];
}

export class ServiceProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  starts = 0;
  /** Exits nobody asked for (the service stopped by itself), with their exit code. */
  readonly unexpectedExits: Array<{ name: string; code: number | string }> = [];
  private expectingExit = false;
  /** Restart after an exit nobody asked for; off once the run stops its services. */
  supervise = true;

  constructor(
    readonly kind: string,
    readonly name: string,
    /** The command line after the launcher: `['run', 'label-joiner']`, `['clickhouse', 'serve']`. */
    private readonly args: readonly string[],
    private readonly launcher: Launcher,
    private readonly env: NodeJS.ProcessEnv,
    private readonly logDir: string,
  ) {}

  get running(): boolean {
    return this.child !== undefined;
  }

  start(): void {
    if (this.child !== undefined) return;
    const log = openSync(join(this.logDir, `${this.name}.log`), 'a');
    try {
      const child = spawn(this.launcher.command, [...this.launcher.args, ...this.args], {
        env: this.env,
        detached: true,
        stdio: ['ignore', log, log],
      });
      this.child = child;
      this.starts++;
      this.expectingExit = false;
      this.exited = new Promise((resolve) => {
        child.once('exit', (code, signal) => {
          if (this.child === child) this.child = undefined;
          if (!this.expectingExit) {
            // Like a supervisor (systemd, Kubernetes): restart it, and report the exit.
            this.unexpectedExits.push({ name: this.name, code: code ?? String(signal) });
            if (this.supervise) setTimeout(() => this.start(), 1_000).unref();
          }
          resolve();
        });
      });
    } finally {
      closeSync(log);
    }
  }

  /** Signals the process group and waits for the exit (SIGKILL after `graceMs` for a SIGTERM). */
  async stop(signal: 'SIGKILL' | 'SIGTERM', graceMs = 30_000): Promise<void> {
    const child = this.child;
    if (child?.pid === undefined) return;
    this.expectingExit = true;
    if (signal === 'SIGTERM') this.supervise = false;
    const pid = child.pid;
    const send = (s: NodeJS.Signals) => {
      try {
        process.kill(-pid, s);
      } catch {
        // already gone
      }
    };
    send(signal);
    const timer = signal === 'SIGTERM' ? setTimeout(() => send('SIGKILL'), graceMs) : undefined;
    await this.exited;
    if (timer !== undefined) clearTimeout(timer);
  }
}
