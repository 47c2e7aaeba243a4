import { DEFAULT_EVENT_TIME_BOUNDS, DriftlineError } from '@driftline/core';
import {
  buildCategoricalProfile,
  buildNumericProfile,
  createSummary,
  type ReferenceProfile,
  type SummaryJson,
} from '@driftline/stats';
import { fuzzParameters, timedCall } from '@driftline/test-support/fuzz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkPartialsTime,
  DEFAULT_THRESHOLDS,
  decodePartials,
  featureResults,
  mergeGroup,
  PARTIALS_FORMAT,
  referenceSet,
  windowVerdict,
} from '../src/index.js';

/**
 * Property tests of the merge stage's input: what the drift-monitor's merge does with one message
 * of the partials topic (decodePartials, the event-time check, then for a partial the merge into
 * its reference and every drift statistic of the merged summaries). Whatever the bytes: accepted,
 * or a typed error (poison DECODE_FAILED / VALIDATION_FAILED, which the stage dead-letters or
 * quarantines), within 100 ms per message.
 */

const NOW = Date.UTC(2026, 11, 2, 12);
const numeric = buildNumericProfile(
  Array.from({ length: 500 }, (_, i) => (i * 7919) % 1000),
  {
    bins: 10,
    fineBins: 50,
  },
);
const categorical = buildCategoricalProfile(Array.from({ length: 300 }, (_, i) => ['fr', 'de', 'us', 'jp'][i % 4]!));
const ref = referenceSet(
  'fraud',
  'v1',
  new Map<string, ReferenceProfile>([
    ['amount', numeric],
    ['country', categorical],
  ]),
);
const amount = createSummary(numeric).addAll([1, 5, 500, 999, null, Number.POSITIVE_INFINITY, -3]);
const country = createSummary(categorical).addAll(['fr', 'fr', 'it', null]);

const source = { topic: 'predictions.v1', partition: 1, partitions: 3 };
const windowStart = NOW - 10 * 60_000;
const partial = {
  type: 'partial',
  format: PARTIALS_FORMAT,
  source,
  model: 'fraud',
  version: 'v1',
  referenceId: ref.referenceId,
  windowStart,
  windowEnd: windowStart + 300_000,
  events: 6,
  late: 1,
  summaries: { amount: amount.toJSON(), country: country.toJSON() } as Record<string, SummaryJson>,
};
const closed = {
  type: 'closed',
  format: PARTIALS_FORMAT,
  source,
  windowStart,
  windowEnd: windowStart + 300_000,
  closedUntil: windowStart + 300_000,
  models: [{ model: 'fraud', version: 'v1' }],
};

/** The merge stage's work on one value: decode, bound its times, merge a partial and compute its drift. */
function mergeStage(value: Buffer): unknown {
  const message = checkPartialsTime(decodePartials(value), NOW, DEFAULT_EVENT_TIME_BOUNDS);
  if (message.type === 'closed') return message;
  // Merged with a well-formed partial of another source partition, as a completing window does.
  const other = { ...message, ...partial, source: { ...source, partition: 0 } } as typeof message;
  const group = { ...message, partials: [other, message], events: message.events, late: message.late };
  const merged = mergeGroup(group, ref);
  const kinds = new Map(ref.features.map((f, i) => [f, ref.profiles[i]!.kind] as const));
  const rows = [];
  for (const [feature, summary] of merged) {
    rows.push(...featureResults(feature, ref.profiles[ref.features.indexOf(feature)]!, summary, DEFAULT_THRESHOLDS));
  }
  // What gets written to drift_windows: numbers a real window can have.
  for (const r of rows) {
    expect(Number.isFinite(r.statistic), `${r.feature} ${r.method} = ${r.statistic}`).toBe(true);
    expect(r.statistic).toBeGreaterThanOrEqual(0);
    if (r.method === 'ks' || r.method === 'missing_rate' || r.method === 'out_of_range') {
      expect(r.statistic).toBeLessThanOrEqual(1);
    }
    expect(Number.isSafeInteger(r.currentSize) && r.currentSize >= 0).toBe(true);
  }
  return windowVerdict(rows, kinds, 'psi', 0);
}

/** Accepted, or one of the typed errors the merge stage acts on; never slow. */
function acceptedOrTyped(value: Buffer): boolean {
  const outcome = timedCall(() => mergeStage(value));
  if (!outcome.threw) return true;
  expect(outcome.error).toBeInstanceOf(DriftlineError);
  expect(['DECODE_FAILED', 'VALIDATION_FAILED']).toContain((outcome.error as DriftlineError).code);
  expect((outcome.error as DriftlineError).retriable).toBe(false);
  return false;
}

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** Every path of a JSON value (objects and arrays), the root included. */
function pathsOf(value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const out = [prefix];
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) out.push(...pathsOf(v, [...prefix, i]));
  } else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...prefix, k]));
  }
  return out;
}

function replaceAt(value: unknown, path: ReadonlyArray<string | number>, replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path;
  const copy = (Array.isArray(value) ? [...value] : { ...(value as object) }) as Record<string | number, unknown>;
  copy[head!] = replaceAt(copy[head!], rest, replacement);
  return copy;
}

/** Values a hostile or buggy writer could put anywhere. */
const hostileValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    2 ** 53,
    -(2 ** 53),
    1e308,
    -1e308,
    -1,
    0.5,
    Number.MAX_SAFE_INTEGER,
    windowStart * 1000,
    '',
    '__proto__',
    'constructor',
    [],
    {},
    null,
    true,
  ),
);
/** Bytes of the doubles that break arithmetic: NaN, ±Infinity, -0, the extremes, a negative count. */
const hostileDouble = fc.constantFrom(
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -0,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  -1,
  2 ** 53 + 2,
  4_294_967_295,
);

/** A summary's data with some 8-byte slots (scalars, exact-sum limbs, f64 counts) overwritten. */
function hostileData(summary: SummaryJson): fc.Arbitrary<SummaryJson> {
  const bytes = Buffer.from(summary.data, 'base64');
  const slots = Math.floor(bytes.length / 8);
  const hostile = fc
    .record({
      writes: fc.array(fc.tuple(fc.nat({ max: slots - 1 }), fc.oneof(hostileDouble, fc.double())), {
        maxLength: 6,
      }),
      encoding: fc.constantFrom('u32', 'f64'),
      random: fc.option(fc.uint8Array({ minLength: bytes.length, maxLength: bytes.length }), { freq: 8 }),
    })
    .map(({ writes, encoding, random }) => {
      const out = random === null ? Buffer.from(bytes) : Buffer.from(random);
      for (const [slot, v] of writes) out.writeDoubleLE(v, slot * 8);
      return { ...summary, encoding: encoding as 'u32' | 'f64', data: out.toString('base64') };
    });
  return fc.oneof({ weight: 3, arbitrary: hostile }, { weight: 1, arbitrary: fc.constant(summary) });
}

describe('drift merge stage input under fuzzing (fast-check, seeded)', { timeout: 60_000 }, () => {
  it('the well-formed messages pass (the properties below are not vacuous)', () => {
    expect(acceptedOrTyped(json(partial))).toBe(true);
    expect(acceptedOrTyped(json(closed))).toBe(true);
  });

  it('any field replaced by a hostile JSON value: accepted or a typed error, each within 100 ms', () => {
    const partialPaths = pathsOf(partial);
    const closedPaths = pathsOf(closed);
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(), hostileValue), { minLength: 1, maxLength: 3 }),
        (isPartial, replacements) => {
          const paths = isPartial ? partialPaths : closedPaths;
          let message: unknown = isPartial ? partial : closed;
          for (const [i, v] of replacements) message = replaceAt(message, paths[i % paths.length]!, v);
          acceptedOrTyped(json(message));
        },
      ),
      fuzzParameters(1_000),
    );
  });

  it('summaries whose counters, scalars and exact-sum limbs are NaN, infinite, negative or random', () => {
    let accepted = 0;
    fc.assert(
      fc.property(hostileData(partial.summaries.amount!), hostileData(partial.summaries.country!), (a, c) => {
        if (acceptedOrTyped(json({ ...partial, summaries: { amount: a, country: c } }))) accepted++;
      }),
      fuzzParameters(1_000),
    );
    expect(accepted).toBeGreaterThan(0);
  });

  it('mutated, truncated and random bytes: accepted or DECODE_FAILED, each within 100 ms', () => {
    const good = json(partial);
    fc.assert(
      fc.property(
        fc.oneof(
          fc
            .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })
            .map((writes) => {
              const b = Buffer.from(good);
              for (const [at, byte] of writes) b[at % b.length] = byte;
              return b;
            }),
          fc.nat({ max: good.length }).map((cut) => good.subarray(0, cut)),
          fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
          fc.json().map((text) => Buffer.from(text)),
          fc.integer({ min: 1, max: 200_000 }).map((depth) => Buffer.from(`${'['.repeat(depth)}${']'.repeat(depth)}`)),
        ),
        (bytes) => {
          acceptedOrTyped(bytes);
        },
      ),
      fuzzParameters(1_000),
    );
  });
});
