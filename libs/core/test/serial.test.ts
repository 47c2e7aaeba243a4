import { describe, expect, it } from 'vitest';
import { serialByKey } from '../src/index.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('serialByKey', () => {
  it('runs one job at a time per key, in order, whatever the outcome; keys run side by side', async () => {
    const serially = serialByKey();
    const log: string[] = [];
    const job =
      (name: string, fail = false) =>
      async () => {
        log.push(`${name} start`);
        await tick();
        log.push(`${name} end`);
        if (fail) throw new Error(name);
        return name;
      };
    const a1 = serially('a', job('a1', true));
    const a2 = serially('a', job('a2'));
    const b1 = serially(1, job('b1'));
    await expect(a1).rejects.toThrow('a1');
    expect(await a2).toBe('a2');
    expect(await b1).toBe('b1');
    expect(log.indexOf('a2 start')).toBeGreaterThan(log.indexOf('a1 end'));
    expect(log.indexOf('b1 start')).toBeLessThan(log.indexOf('a1 end'));
  });

  it('idle() waits for every job given so far', async () => {
    const serially = serialByKey();
    let done = 0;
    void serially('a', async () => {
      await tick();
      done++;
    });
    void serially('b', async () => {
      await tick();
      await tick();
      done++;
      throw new Error('failed');
    }).catch(() => {});
    await serially.idle();
    expect(done).toBe(2);
  });
});
