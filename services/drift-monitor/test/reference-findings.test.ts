import type { Logger } from '@driftline/core';
import { referenceSet } from '@driftline/drift';
import { buildCategoricalProfile, buildNumericProfile, type ReferenceProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import { ReferenceCache } from '../src/reference-cache.js';
import { referenceFindingsLog } from '../src/reference-findings.js';
import { batchPairs, memoryReferenceStore } from './support.js';

const T0 = Date.UTC(2026, 0, 1);

type Line = { level: 'error' | 'warn'; obj: Record<string, unknown>; msg: string | undefined };

function recording(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    error: (obj, msg) => {
      lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg });
    },
    warn: (obj, msg) => {
      lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg });
    },
    child: () => logger,
  };
  return { logger, lines };
}

describe('the drift monitor checks each reference it loads, once per reference id', () => {
  let seed = 11;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const grid = buildNumericProfile(Array.from({ length: 20_000 }, () => rnd()));
  const wide = referenceSet('wide', 'v1', new Map(Array.from({ length: 1_500 }, (_, f) => [`f${f}`, grid] as const)));
  const ids = referenceSet(
    'ids',
    'v1',
    new Map<string, ReferenceProfile>([
      ['user_id', buildCategoricalProfile(Array.from({ length: 60_000 }, (_, i) => `u${i}`))],
      ['x', grid],
    ]),
  );
  const fine = referenceSet('fine', 'v1', new Map([['x', grid]]));

  it('a reference too wide for the partials topic: one error at load naming model, version, features and the limit; an id-like column: one warning', async () => {
    const { logger, lines } = recording();
    let clock = T0;
    const { store } = memoryReferenceStore([ids, fine, wide]);
    const cache = new ReferenceCache(
      store,
      () => clock,
      { preloadEntries: 1, catalogRefreshMs: 1_000 },
      referenceFindingsLog(logger),
    );
    await cache.preload(); // the newest only: `wide`
    expect(lines).toHaveLength(1);
    expect(lines[0]!.level).toBe('error');
    expect(lines[0]!.obj).toMatchObject({ model: 'wide', version: 'v1', features: 1_500, code: 'PARTIAL_TOO_LARGE' });
    expect(lines[0]!.msg).toContain('1500 features (1500 numeric)');
    expect(lines[0]!.msg).toContain('above the 16 MiB the drift partials topic takes');

    // Loaded for a batch: the id-like column's warning; `fine` says nothing.
    await cache.ensure(
      batchPairs(
        [
          ['ids', 'v1'],
          ['fine', 'v1'],
          ['wide', 'v1'],
        ],
        T0,
      ),
    );
    expect(lines.slice(1).map((l) => [l.level, l.obj.model, l.obj.feature, l.obj.code])).toEqual([
      ['warn', 'ids', 'user_id', 'TAIL_SKETCH_SATURATED'],
    ]);
    expect(lines[1]!.msg).toContain('column "user_id"');

    // Every later batch, catalog refresh and reload of the same ids: nothing more (not one per window).
    for (let i = 0; i < 5; i++) {
      clock += 2_000;
      await cache.ensure(
        batchPairs(
          [
            ['ids', 'v1'],
            ['wide', 'v1'],
          ],
          T0,
        ),
      );
    }
    const again = new ReferenceCache(store, () => clock, {}, referenceFindingsLog(logger));
    expect(lines).toHaveLength(2);
    await again.preload(); // another cache (a restart): its own first load says it again
    expect(
      lines
        .slice(2)
        .map((l) => `${l.obj.model} ${l.obj.code}`)
        .sort(),
    ).toEqual(['ids TAIL_SKETCH_SATURATED', 'wide PARTIAL_TOO_LARGE']);
  });
});
