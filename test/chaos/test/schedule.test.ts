import { describe, expect, it } from 'vitest';
import { HUGE_COUNT, zigzag } from '../src/avro.js';
import { faultSchedule, SERVICE_KINDS } from '../src/faults.js';
import { POISON_KINDS, Traffic } from '../src/traffic.js';

describe('chaos schedule and stream', () => {
  it('kills every service kind 3 times and injects each stack fault once, within the traffic', () => {
    expect(SERVICE_KINDS).toEqual([
      'feature-materializer',
      'feature-api',
      'label-joiner',
      'drift-monitor',
      'retrain-trigger',
    ]);
    const faults = faultSchedule(7, 120_000);
    for (const kind of SERVICE_KINDS) expect(faults.filter((f) => f.kind === `kill:${kind}`)).toHaveLength(3);
    for (const kind of ['restart:kafka', 'restart:schema-registry', 'pause:redis', 'kill:redis', 'kill:clickhouse']) {
      expect(faults.filter((f) => f.kind === kind)).toHaveLength(1);
    }
    expect(faults.every((f) => f.atMs >= 0 && f.atMs < 120_000)).toBe(true);
    expect(faultSchedule(7, 120_000)).toEqual(faults); // seeded
  });

  it('is the same stream for the same seed, with hostile records of every kind over a long run', () => {
    const options = {
      seed: 3,
      start: 1_800_000_000_000,
      rate: 40,
      entities: 200,
      driftFromSecond: 50,
      hostileShare: 0.01,
    };
    const a = new Traffic(options);
    const b = new Traffic(options);
    const kinds = new Set<string>();
    for (let s = 0; s < 300; s++) {
      const x = a.second(s);
      expect(b.second(s)).toEqual(x);
      for (const h of x.hostile) kinds.add(`${h.topic}:${h.kind}`);
    }
    const all = Object.entries(POISON_KINDS).flatMap(([topic, list]) => list.map((k) => `${topic}:${k}`));
    expect([...kinds].sort()).toEqual(all.sort());
  });

  it('encodes Avro longs as zigzag varints; the huge count is near 2^63', () => {
    expect([...zigzag(0)]).toEqual([0]);
    expect([...zigzag(-1)]).toEqual([1]);
    expect([...zigzag(64)]).toEqual([0x80, 0x01]);
    expect(HUGE_COUNT).toHaveLength(10);
  });
});
