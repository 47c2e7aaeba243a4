import { readdirSync, readFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { SeededRandom } from '@driftline/test-support/random';
import { httpCall } from '../features/http.js';
import { percentile } from '../stats.js';

/**
 * Untimed requests each target gets before the first timed block: a fresh Node process is still
 * tiering up its code and sizing its heap (its first 1,000 timed requests used twice the CPU per
 * request of later ones and had the worst p99 of every run). MLServer gets the same.
 */
export const WARM_UP = 3_000;

/** Distinct bodies per target, cycled: 8,000 batch bodies at 28 KB would hold 220 MB of client heap. */
const DISTINCT_BODIES = 1_000;

/** One server and request shape on its own keep-alive connection (the anchor's single client). */
export interface TimedTarget {
  /** The shape's name in the results ('inline.batch100', 'mlserver.batch100', …). */
  readonly name: string;
  /** Untimed requests (WARM_UP by default). */
  warm(count?: number): Promise<void>;
  /** `count` requests one after another: their latencies in ms (in order) and the server's CPU seconds meanwhile. */
  run(count: number): Promise<{ latencies: number[]; cpuSeconds: number }>;
  close(): void;
}

/**
 * A target whose requests POST `body(i)` to `path`; every body is built before the first request,
 * so the client's own JSON work and its garbage stay out of the timed loop. Any status but 200
 * fails the run (`server` names who answered it). `cpuSeconds` reads the server's CPU time.
 */
export function timedTarget(options: {
  readonly name: string;
  readonly server: string;
  readonly port: number;
  readonly path: string;
  readonly body: (i: number) => string;
  readonly cpuSeconds: () => number;
}): TimedTarget {
  const bodies = Array.from({ length: DISTINCT_BODIES }, (_, i) => options.body(i));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let next = 0;
  const post = async () => {
    const status = await httpCall(agent, options.port, 'POST', options.path, bodies[next++ % bodies.length]!);
    if (status !== 200) throw new Error(`${options.server} answered ${status}`);
  };
  return {
    name: options.name,
    async warm(count = WARM_UP) {
      for (let i = 0; i < count; i++) await post();
    },
    async run(count) {
      const latencies: number[] = [];
      const cpu0 = options.cpuSeconds();
      for (let i = 0; i < count; i++) {
        const t = performance.now();
        await post();
        latencies.push(performance.now() - t);
      }
      return { latencies, cpuSeconds: options.cpuSeconds() - cpu0 };
    },
    close: () => agent.destroy(),
  };
}

/** One repeat of one target: its p50/p99 (ms), CPU ms per request, and every latency (for pooled tails). */
export interface RepeatResult {
  readonly p50: number;
  readonly p99: number;
  readonly cpuMsPerRequest: number;
  readonly latencies: readonly number[];
}

/**
 * Every target, `repeats` times `count` requests, INTERLEAVED: each repeat is `blocks` rounds in
 * which every target runs count/blocks requests in turn, in an order shuffled each round. On a
 * shared 2-core machine the background load changes within a minute (MLServer's p99 moved from 1.7 to 3.7 ms between runs minutes apart);
 * interleaved, a server and the one it is compared with see the same conditions, so the ratio of
 * their p99s in one repeat is fair even when the p99s themselves move. A target marked `optional`
 * (MLServer) that fails is dropped with its reason (`dropped`); any other failure throws.
 */
export async function runInterleaved(
  targets: ReadonlyArray<TimedTarget & { readonly optional?: boolean }>,
  options: { readonly repeats: number; readonly count: number; readonly blocks: number },
  log: (line: string) => void,
): Promise<{ results: Map<string, RepeatResult[]>; dropped: Map<string, string> }> {
  const results = new Map<string, RepeatResult[]>();
  const dropped = new Map<string, string>();
  const live = new Set(targets);
  const attempt = async (t: TimedTarget & { readonly optional?: boolean }, work: () => Promise<void>) => {
    try {
      await work();
    } catch (error) {
      if (!t.optional) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      dropped.set(t.name, reason);
      live.delete(t);
      log(`${t.name}: dropped: ${reason}`);
    }
  };
  for (const t of targets) await attempt(t, () => t.warm());
  const perBlock = Math.ceil(options.count / options.blocks);
  const random = new SeededRandom(0x5eed); // the same orders on every run
  for (let r = 0; r < options.repeats; r++) {
    const latencies = new Map<TimedTarget, number[]>();
    const cpu = new Map<TimedTarget, number>();
    for (let b = 0; b < options.blocks; b++) {
      // A new order each round: a logged server's last sends and its broker's work go on into the
      // next block, and in a fixed order they would always fall on the same target.
      for (const t of random.shuffle([...live])) {
        await attempt(t, async () => {
          const got = await t.run(perBlock);
          const list = latencies.get(t) ?? [];
          for (const l of got.latencies) list.push(l);
          latencies.set(t, list);
          cpu.set(t, (cpu.get(t) ?? 0) + got.cpuSeconds);
        });
      }
    }
    for (const t of live) {
      const l = (latencies.get(t) ?? []).sort((a, b) => a - b);
      const result: RepeatResult = {
        p50: percentile(l, 50),
        p99: percentile(l, 99),
        cpuMsPerRequest: ((cpu.get(t) ?? 0) * 1000) / l.length,
        latencies: l,
      };
      results.set(t.name, [...(results.get(t.name) ?? []), result]);
      log(
        `repeat ${r + 1} ${t.name}: p50 ${result.p50.toFixed(3)} p99 ${result.p99.toFixed(3)} ms, ${result.cpuMsPerRequest.toFixed(3)} CPU ms/request`,
      );
    }
  }
  for (const name of dropped.keys()) results.delete(name);
  return { results, dropped };
}

/** utime + stime ticks of a /proc/<pid>/stat line, and its process group. */
function statOf(stat: string): { pgrp: number; ticks: number } {
  // "pid (comm) state ppid pgrp ... utime stime": comm may hold spaces, so split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pgrp: Number(rest[2]), ticks: Number(rest[11]) + Number(rest[12]) };
}

/**
 * User + system CPU seconds (every thread; USER_HZ is 100 on Linux) of process `pid`, or of every
 * live process in group `pgid` (MLServer forks workers).
 */
export function cpuSecondsOf(who: { readonly pid: number } | { readonly pgid: number }): number {
  if ('pid' in who) return statOf(readFileSync(`/proc/${who.pid}/stat`, 'utf8')).ticks / 100;
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const s = statOf(stat);
    if (s.pgrp === who.pgid) ticks += s.ticks;
  }
  return ticks / 100;
}
