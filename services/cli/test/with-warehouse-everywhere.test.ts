import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// Every command that opens the warehouse must do it through withWarehouse (src/with-warehouse.ts):
// a command that opened it itself printed an embedded query's timeout and then waited minutes for
// the engine (found by a review in four commands). This holds a command added later to the same.
const SRC = join(import.meta.dirname, '../src');
const OPENERS = /\b(openWarehouse|createClickHouse)\(/g;
const THROUGH_HELPER = /withWarehouse\(\s*\(\)\s*=>\s*(openWarehouse|createClickHouse)\(/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('the CLI opens the warehouse only through withWarehouse', () => {
  // Each source without its import lines (an import names the openers without calling them).
  const texts = sources(SRC)
    .filter((f) => !f.endsWith('with-warehouse.ts'))
    .map((f) => ({ f, text: readFileSync(f, 'utf8').replace(/^import .*$/gm, '') }));

  it('finds the commands that open it (the check reads what it should)', () => {
    expect(texts.filter(({ text }) => text.match(OPENERS) !== null).length).toBeGreaterThanOrEqual(5);
  });

  it('every call of openWarehouse or createClickHouse is the open of a withWarehouse', () => {
    const outside = texts.flatMap(({ f, text }) => {
      const calls = text.match(OPENERS)?.length ?? 0;
      const through = text.match(THROUGH_HELPER)?.length ?? 0;
      return calls === through ? [] : [`${f}: ${calls - through} of ${calls} outside withWarehouse`];
    });
    expect(outside).toEqual([]);
  });
});
