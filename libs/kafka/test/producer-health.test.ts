import { describe, expect, it } from 'vitest';
import { ProducerHealth } from '../src/producer-health.js';

const policy = { replaceAfterMs: 30_000, sendDeadlineMs: 120_000 };

describe('producer health: when a fresh producer replaces the failing one', () => {
  it('never while sends succeed, or fail for less than replaceAfterMs', () => {
    const h = new ProducerHealth(policy);
    expect(h.shouldReplace(0)).toBe(false);
    h.failed(1_000);
    h.failed(20_000);
    expect(h.shouldReplace(30_999)).toBe(false);
    h.succeeded();
    h.failed(40_000);
    expect(h.shouldReplace(69_999)).toBe(false); // the run restarted at 40 s
  });

  it('once failures have lasted replaceAfterMs, then at most once per replaceAfterMs', () => {
    const h = new ProducerHealth(policy);
    h.failed(1_000);
    expect(h.shouldReplace(31_000)).toBe(true);
    expect(h.shouldReplace(31_001)).toBe(false);
    h.failed(45_000);
    expect(h.shouldReplace(60_999)).toBe(false);
    expect(h.shouldReplace(61_000)).toBe(true);
    h.succeeded();
    expect(h.shouldReplace(200_000)).toBe(false);
  });

  it('at once after a send that went unanswered past its deadline', () => {
    const h = new ProducerHealth(policy);
    h.timedOut(5_000);
    expect(h.shouldReplace(5_000)).toBe(true);
    expect(h.shouldReplace(5_001)).toBe(false);
  });
});
