import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { defineService, type ServiceDefinition, startRunner } from '../src/index.js';

/**
 * A service whose stop waits (up to 2 s) for the other one's stop to begin, and records whether it
 * did: stopped one after another, the first waits in vain.
 */
function waitingService(name: string, started: Set<string>, other: string, met: Map<string, boolean>) {
  return defineService({
    name,
    description: 'test service whose stop waits for another stop to begin',
    needs: [],
    envShape: {},
    configure: () => undefined,
    async start() {
      return {
        ready: () => true,
        stop: async () => {
          started.add(name);
          const deadline = Date.now() + 2_000;
          while (!started.has(other) && Date.now() < deadline) await sleep(10);
          met.set(name, started.has(other));
        },
      };
    },
  }) as unknown as ServiceDefinition<never, unknown>;
}

describe('the runner stops its services together', () => {
  it("each service's stop begins before another's ends (in turn, bounded stops added up past a supervisor's grace)", async () => {
    const started = new Set<string>();
    const met = new Map<string, boolean>();
    const runner = await startRunner({
      services: [waitingService('first', started, 'second', met), waitingService('second', started, 'first', met)],
      env: { DRIFTLINE_HTTP_PORT: '0' },
      logger: silentLogger,
    });
    await runner.stop();
    expect(Object.fromEntries(met)).toEqual({ first: true, second: true });
  });
});
