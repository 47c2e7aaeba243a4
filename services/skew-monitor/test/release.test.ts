import { DEFAULT_EVENT_TIME_BOUNDS, SinkUnavailableError } from '@driftline/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { releaseIntervalMs, startReleaseLoop } from '../src/release.js';
import { recordingLogger } from './fixtures/logger.js';

describe('the release loop', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sweeps the owned topics every tick; a failed sweep logs one line per outage and never throws', async () => {
    vi.useFakeTimers();
    const { logger, lines } = recordingLogger();
    let down = true;
    const swept: string[] = [];
    const loop = startReleaseLoop({
      intervalMs: 1_000,
      ownedTopics: async () => ['predictions.v1'],
      release: async (topic) => {
        if (down) throw new SinkUnavailableError('clickhouse down');
        swept.push(topic);
        return 0;
      },
      logger,
    });
    await vi.advanceTimersByTimeAsync(3_500); // three failed ticks
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(lines.filter((l) => l.level === 'debug')).toHaveLength(2);
    down = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(swept).toEqual(['predictions.v1']);
    expect(lines.at(-1)).toMatchObject({ level: 'info' });
    await loop.stop();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(swept).toHaveLength(1);
  });

  it('runs one sweep at a time, sweeps nothing without owned partitions, and stop waits for the running one', async () => {
    const { logger } = recordingLogger();
    let owned: string[] = [];
    let running = 0;
    let most = 0;
    let finish: () => void = () => {};
    const loop = startReleaseLoop({
      intervalMs: 60_000,
      ownedTopics: async () => owned,
      release: async () => {
        running++;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => {
          finish = resolve;
        });
        running--;
        return 1;
      },
      logger,
    });
    loop.trigger();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(most).toBe(0);
    owned = ['t'];
    loop.trigger();
    await vi.waitFor(() => expect(running).toBe(1), { timeout: 10_000 }); // not the 1 s default: a loaded run
    loop.trigger(); // ignored while one runs
    let stopped = false;
    const stopping = loop.stop().then(() => {
      stopped = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stopped).toBe(false);
    finish();
    await stopping;
    expect(most).toBe(1);
  });

  it('looks at most every 15 s, and often enough within a short event-time bound', () => {
    expect(releaseIntervalMs(DEFAULT_EVENT_TIME_BOUNDS.maxFutureMs)).toBe(15_000);
    expect(releaseIntervalMs(40_000)).toBe(5_000);
    expect(releaseIntervalMs(1_000)).toBe(1_000);
  });
});
