import { PoisonRecordError } from '@driftline/core';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  decodePartials,
  PARTIALS_FORMAT,
  PARTIALS_MAX_BYTES,
  PARTIALS_MAX_DEPTH,
  PARTIALS_MAX_FEATURES,
  PARTIALS_MAX_MODELS,
  PARTIALS_MAX_SOURCE_PARTITIONS,
  PARTIALS_MAX_SUMMARY_COUNTERS,
} from '../src/index.js';

const source = { topic: 'predictions.v1', partition: 0, partitions: 2 };
const summary = { format: 'driftline.summary/1', kind: 'categorical', profileId: 'p1', encoding: 'u32', data: 'AAAA' };
const partial = {
  type: 'partial',
  format: PARTIALS_FORMAT,
  source,
  model: 'fraud',
  version: 'v1',
  referenceId: 'r1',
  windowStart: 0,
  windowEnd: 60_000,
  events: 3,
  late: 0,
  summaries: { amount: summary },
};
const closed = {
  type: 'closed',
  format: PARTIALS_FORMAT,
  source,
  windowStart: 0,
  windowEnd: 60_000,
  closedUntil: 60_000,
  models: [{ model: 'fraud', version: 'v1' }],
};

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** The poison error of `value` (never anything else), and how long the refusal took. */
function refused(value: Buffer): { error: PoisonRecordError; ms: number } {
  const started = performance.now();
  try {
    decodePartials(value);
  } catch (error) {
    expect(error).toBeInstanceOf(PoisonRecordError);
    expect(error).toMatchObject({ code: 'DECODE_FAILED', retriable: false });
    return { error: error as PoisonRecordError, ms: performance.now() - started };
  }
  throw new Error('a hostile partials message was accepted');
}

describe('decodePartials bounds (hostile or corrupt partials are poison, never unbounded work)', () => {
  it('accepts well-formed messages', () => {
    expect(decodePartials(json(partial))).toMatchObject({ type: 'partial', model: 'fraud' });
    expect(decodePartials(json(closed))).toMatchObject({ type: 'closed', models: [{ model: 'fraud', version: 'v1' }] });
  });

  it('refuses a value over the byte limit before parsing it', () => {
    const huge = Buffer.alloc(PARTIALS_MAX_BYTES + 1, 0x20);
    const { error, ms } = refused(huge);
    expect(error.message).toBe(
      `drift partials: value of ${PARTIALS_MAX_BYTES + 1} bytes exceeds the limit of ${PARTIALS_MAX_BYTES}`,
    );
    console.log(`oversized partials refused in ${ms.toFixed(3)} ms`);
  });

  it('refuses deep nesting before parsing it (16 MiB of "[" took 3.4 s and ~0.5 GB to parse; found by fuzzing)', () => {
    const depth = 4 * 1024 * 1024;
    const { error, ms } = refused(Buffer.from(`${'['.repeat(depth)}${']'.repeat(depth)}`));
    expect(error.message).toBe(`drift partials: nesting deeper than ${PARTIALS_MAX_DEPTH} levels`);
    console.log(`8 MiB of nested brackets refused in ${ms.toFixed(1)} ms`);
    // Brackets inside strings are not nesting; what stage one writes is 3 deep.
    const names = { ...partial, model: '[[[[[[[[[[{{{{{{{{{{\\"', summaries: { amount: summary } };
    expect(decodePartials(json(names))).toMatchObject({ type: 'partial', model: names.model });
    const atLimit = JSON.stringify(Array.from({ length: PARTIALS_MAX_DEPTH - 2 }).reduce<unknown>((v) => [v], 1));
    expect(refused(Buffer.from(`{"format":"${PARTIALS_FORMAT}","source":${atLimit}}`)).error.message).toMatch(
      /source must be an object/,
    );
  });

  it('refuses a source claiming an absurd partition count (the merge loops over it)', () => {
    const { error } = refused(json({ ...closed, source: { ...source, partitions: 2 ** 52 } }));
    expect(error.message).toMatch(new RegExp(`source.partitions must be .* at most ${PARTIALS_MAX_SOURCE_PARTITIONS}`));
  });

  it('refuses too many models, too many features, and names that are not strings', () => {
    const models = Array.from({ length: PARTIALS_MAX_MODELS + 1 }, (_, i) => ({ model: `m${i}`, version: 'v' }));
    expect(refused(json({ ...closed, models })).error.message).toMatch(/models: more than 10000 entries/);
    const summaries = Object.fromEntries(
      Array.from({ length: PARTIALS_MAX_FEATURES + 1 }, (_, i) => [`f${i}`, summary] as const),
    );
    expect(refused(json({ ...partial, summaries })).error.message).toMatch(/summaries: more than 10000 features/);
    expect(refused(json({ ...partial, model: 42 })).error.message).toMatch(/model must be a string/);
  });

  it('refuses summaries of the wrong shape or with more counters than any profile has', () => {
    expect(refused(json({ ...partial, summaries: [summary] })).error.message).toMatch(/summaries must be an object/);
    expect(refused(json({ ...partial, summaries: { amount: 'x' } })).error.message).toMatch(
      /summaries.amount must be an object/,
    );
    expect(refused(json({ ...partial, summaries: { amount: { ...summary, kind: 'other' } } })).error.message).toMatch(
      /summaries.amount.kind/,
    );
    expect(refused(json({ ...partial, summaries: { amount: { ...summary, encoding: 'u64' } } })).error.message).toMatch(
      /summaries.amount.encoding/,
    );
    expect(
      refused(json({ ...partial, summaries: { amount: { ...summary, data: 'not base64!' } } })).error.message,
    ).toMatch(/summaries.amount.data must be base64/);
    const tooMany = 'A'.repeat(Math.ceil(((PARTIALS_MAX_SUMMARY_COUNTERS + 100) * 8 * 4) / 3 / 4) * 4);
    expect(
      refused(json({ ...partial, summaries: { amount: { ...summary, encoding: 'f64', data: tooMany } } })).error
        .message,
    ).toMatch(/summaries.amount.data holds more than 100000 counters/);
  });

  it('fuzz: truncated and mutated messages are accepted or poison, nothing else', () => {
    const good = json(partial);
    for (let cut = 0; cut < good.length; cut++) {
      try {
        decodePartials(good.subarray(0, cut));
      } catch (error) {
        expect(error).toBeInstanceOf(PoisonRecordError);
      }
    }
    const rng = new SeededRandom(7);
    for (let i = 0; i < 5_000; i++) {
      const bytes = Buffer.from(good);
      for (let m = 1 + rng.int(3); m > 0; m--) bytes[rng.int(bytes.length)] = rng.int(256);
      try {
        decodePartials(bytes);
      } catch (error) {
        expect(error).toBeInstanceOf(PoisonRecordError);
      }
    }
  });
});
