import { Agent } from 'node:http';
import { httpCall } from '../features/http.js';

/** Requests sent before the clock starts on each run. */
const WARM_UP = 200;

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
