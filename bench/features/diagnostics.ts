// What a benchmark process sees while it runs: event-loop delay (a stalled loop delays every
// request it serves) and GC pauses; and, from Redis, the time per call of the commands that
// interleave on its single thread. For finding where a latency tail comes from.
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import type { RedisClient } from '@driftline/online-store/redis';

export interface ProcessDiagnostics {
  /** Event-loop delay in ms (resolution 1 ms, so figures under ~1 ms mean "no stall"). */
  readonly loopP99Ms: number;
  readonly loopMaxMs: number;
  readonly gcCount: number;
  readonly gcTotalMs: number;
  readonly gcMaxMs: number;
}

/** Starts watching this process; `stop()` returns what happened meanwhile. */
export function watchProcess(): { stop(): ProcessDiagnostics } {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  let gcCount = 0;
  let gcTotalMs = 0;
  let gcMaxMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcCount++;
      gcTotalMs += entry.duration;
      gcMaxMs = Math.max(gcMaxMs, entry.duration);
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  return {
    stop() {
      loop.disable();
      gc.disconnect();
      return {
        loopP99Ms: loop.percentile(99) / 1e6,
        loopMaxMs: loop.max / 1e6,
        gcCount,
        gcTotalMs,
        gcMaxMs,
      };
    },
  };
}

export type CommandStats = Map<string, { calls: number; usec: number }>;

/** `INFO commandstats` as calls and total µs per command. */
export async function commandStats(client: RedisClient): Promise<CommandStats> {
  const text = await client.info('commandstats');
  const out: CommandStats = new Map();
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out;
}

/** µs per call of the commands called between two snapshots (Redis' own time, not the network). */
export function commandStatsDelta(before: CommandStats, after: CommandStats, names: readonly string[]): string {
  return names
    .map((name) => {
      const a = after.get(name);
      const b = before.get(name) ?? { calls: 0, usec: 0 };
      if (a === undefined || a.calls === b.calls) return `${name} -`;
      const calls = a.calls - b.calls;
      return `${name} ${calls} calls ${((a.usec - b.usec) / calls).toFixed(1)} µs/call`;
    })
    .join(', ');
}
