import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReferenceSet } from '@driftline/drift';
import type { ReferenceStore } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { referenceCommand } from '../src/commands/reference.js';
import { describeError } from '../src/describe-error.js';
import { buildAndStoreReference } from '../src/index.js';

/** The port's smallest honest implementation: keeps what was saved. */
function memoryReferences(): ReferenceStore & { saved: ReferenceSet[] } {
  const saved: ReferenceSet[] = [];
  return {
    saved,
    save: async (set) => {
      saved.push(set);
    },
    latest: async (model, version) => saved.filter((s) => s.model === model && s.version === version).at(-1),
    byId: async (id) => saved.find((s) => s.referenceId === id),
    newest: async () => [...saved],
    catalog: async () => saved.map((s) => ({ model: s.model, version: s.version, referenceId: s.referenceId })),
  };
}

describe('driftline reference: the drift monitor’s checks before a reference is stored', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reference-checks-'));

  it('1,500 numeric columns (partials above the topic’s 16 MiB): refused in one line, exit 3, nothing stored', async () => {
    // 1,100 distinct values a column: the default 1000-cut grid, as a real training column.
    const columns = 1_500;
    const rows = 1_100;
    const header = Array.from({ length: columns }, (_, c) => `f${c}`).join(',');
    const lines = [header];
    for (let r = 0; r < rows; r++) lines.push(Array.from({ length: columns }, (_, c) => (r * 7 + c) % rows).join(','));
    const file = join(dir, 'wide.csv');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const references = memoryReferences();
    const error = await buildAndStoreReference({ references, model: 'wide', version: 'v1', file }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const described = describeError(error, 'driftline reference --help');
    expect(described.code).toBe(3);
    expect(described.line).toMatch(
      /^reference of "wide" version "v1" has 1500 features \(1500 numeric\): one window's partial would be 16\.\d\d MiB, above the 16 MiB the drift partials topic takes/,
    );
    expect(described.line).toContain('--exclude');
    expect(described.line).toContain('nothing was stored');
    expect(described.line).not.toContain('\n');
    expect(references.saved).toEqual([]);
    // The command refuses it before it opens the warehouse.
    const commandError = await referenceCommand(['--model', 'wide', '--version', 'v1', '--file', file]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(describeError(commandError, 'driftline reference --help')).toEqual(described);
  }, 60_000);

  it('an id-like column (a distinct value per row): stored, with one warning naming the column and --exclude', async () => {
    const rows = 60_000;
    const lines = ['user_id,x'];
    for (let r = 0; r < rows; r++) lines.push(`u${r},${r % 97}`);
    const file = join(dir, 'ids.csv');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const references = memoryReferences();
    const warnings: string[] = [];
    const set = await buildAndStoreReference({
      references,
      model: 'm',
      version: 'v1',
      file,
      warn: (line) => warnings.push(line),
    });
    expect(references.saved).toEqual([set]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^warning: reference of "m" version "v1": column "user_id" has 60000 distinct values/);
    expect(warnings[0]).toContain('--exclude');
    // Left out, nothing to say.
    const quiet: string[] = [];
    await buildAndStoreReference({
      references,
      model: 'm',
      version: 'v2',
      file,
      columns: { exclude: ['user_id'] },
      warn: (line) => quiet.push(line),
    });
    expect(quiet).toEqual([]);
  }, 60_000);
});
