import { readdirSync, readFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { httpCall } from '../features/http.js';

/** Requests sent before the clock starts on each run. */
export const WARM_UP = 200;

/**
 * `count` POSTs to `path` on one keep-alive connection, one after another (the anchor's single
 * client), after WARM_UP untimed ones; the sorted latencies in ms. Every body is built before the
 * first request, so the client's own JSON work and its garbage stay out of the timed loop. Any
 * status but 200 fails the run (`server` names who answered it).
 */
export async function timedPosts(
  server: string,
  port: number,
  path: string,
  count: number,
  body: (i: number) => string,
): Promise<number[]> {
  const bodies = Array.from({ length: count + WARM_UP }, (_, i) => body(i));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const latencies: number[] = [];
  try {
    for (let i = 0; i < bodies.length; i++) {
      const t = performance.now();
      const status = await httpCall(agent, port, 'POST', path, bodies[i]!);
      if (status !== 200) throw new Error(`${server} answered ${status}`);
      if (i >= WARM_UP) latencies.push(performance.now() - t);
    }
  } finally {
    agent.destroy();
  }
  return latencies.sort((a, b) => a - b);
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
