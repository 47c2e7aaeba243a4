// The checks of the embedded engine's data directory before the engine opens it, with a stand-in
// for the engine (`open`): a path that can never be the directory is a ConfigError naming
// DRIFTLINE_CLICKHOUSE_PATH — never "internal error … report it", never a start-up retried for
// DRIFTLINE_STARTUP_TIMEOUT — and a reader creates nothing (found by a review).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@driftline/core';
import { afterAll, describe, expect, it } from 'vitest';
import { openEngineDirectory } from '../src/engine-directory.js';

const work = mkdtempSync(join(tmpdir(), 'driftline-engine-directory-'));
let n = 0;
/** A fresh directory of this file's. */
const fresh = () => {
  const dir = join(work, `case-${++n}`);
  mkdirSync(dir);
  return dir;
};

afterAll(() => rmSync(work, { recursive: true, force: true }));

const OPENED = Symbol('opened');
const open = (path: string, create = true) => openEngineDirectory(path, () => OPENED, 'advice', { create });

/** What the ConfigError naming DRIFTLINE_CLICKHOUSE_PATH that `open` throws for `path` says, or fails the test. */
function refusal(path: string, create = true): { message: string } {
  try {
    open(path, create);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('DRIFTLINE_CLICKHOUSE_PATH');
    const prefix = 'DRIFTLINE_CLICKHOUSE_PATH: ';
    expect((error as Error).message.startsWith(prefix)).toBe(true);
    return { message: (error as Error).message.slice(prefix.length) };
  }
  throw new Error(`${path} was opened`);
}

/** An engine directory laid out as chdb lays one out: an Atomic database whose metadata and tables link into store/. */
function warehouse(): string {
  const dir = fresh();
  for (const d of ['metadata', 'data/driftline', 'tmp', 'store/db1/db1-uuid', 'store/776/776-uuid']) {
    mkdirSync(join(dir, d), { recursive: true });
  }
  writeFileSync(join(dir, 'metadata', 'driftline.sql'), "ATTACH DATABASE _ UUID 'db1-uuid'\nENGINE = Atomic\n");
  symlinkSync('../store/db1/db1-uuid', join(dir, 'metadata', 'driftline'));
  symlinkSync('../../store/776/776-uuid', join(dir, 'data', 'driftline', 'drift_windows'));
  return dir;
}

describe('openEngineDirectory: a path that cannot be the directory is a configuration error', () => {
  it('a path under a regular file: one line naming the file (it was "internal error: ENOTDIR … report it")', () => {
    const file = join(fresh(), 'afile');
    writeFileSync(file, '');
    for (const create of [true, false]) {
      expect(refusal(join(file, 'chdb'), create).message).toBe(
        `${join(file, 'chdb')} cannot be a directory: ${file} is a regular file, not a directory`,
      );
      expect(refusal(join(file, 'deeper', 'chdb'), create).message).toMatch(`: ${file} is a regular file`);
    }
  });

  it('the path itself a regular file (it was "internal error: EEXIST … report it")', () => {
    const file = join(fresh(), 'afile');
    writeFileSync(file, '');
    for (const create of [true, false]) {
      expect(refusal(file, create).message).toBe(`${file} is a regular file, not a directory`);
    }
  });

  it('a path with a NUL byte (a programmatic config: an environment variable cannot hold one)', () => {
    expect(refusal(`${fresh()}/a\0b`).message).toMatch(/contains a NUL byte$/);
  });

  it('a symbolic link that leads nowhere', () => {
    const dir = fresh();
    symlinkSync(join(dir, 'gone'), join(dir, 'link'));
    expect(refusal(join(dir, 'link', 'chdb')).message).toBe(
      `${join(dir, 'link', 'chdb')} cannot be created: ${join(dir, 'link')} is a symbolic link to ${join(dir, 'gone')}, which leads to no directory`,
    );
    expect(refusal(join(dir, 'link'), false).message).toMatch(
      /^no warehouse at .*: it is a symbolic link to .*gone, which does not exist; nothing was created$/,
    );
  });

  it('a symbolic link loop, a name longer than the file system takes: the errno named', () => {
    const dir = fresh();
    symlinkSync(join(dir, 'b'), join(dir, 'a'));
    symlinkSync(join(dir, 'a'), join(dir, 'b'));
    for (const create of [true, false]) {
      expect(refusal(join(dir, 'a', 'chdb'), create).message).toMatch(
        /^.*\/a\/chdb cannot be used as the engine's data directory: ELOOP: too many symbolic links encountered/,
      );
      expect(refusal(join(dir, 'x'.repeat(300)), create).message).toMatch(
        /cannot be used as the engine's data directory: ENAMETOOLONG: name too long/,
      );
    }
  });
});

describe('openEngineDirectory: a reader creates nothing', () => {
  it('a directory that does not exist: "no warehouse at …", and no directory made (report made the whole tree)', () => {
    const base = fresh();
    const path = join(base, 'not', 'there', 'chdb');
    expect(refusal(path, false).message).toBe(
      `no warehouse at ${path}: the directory does not exist (a typo, or nothing has written there yet); nothing was created`,
    );
    expect(readdirSync(base)).toEqual([]);
  });

  it('an existing directory holding no engine data: refused, left empty', () => {
    const path = fresh();
    expect(refusal(path, false).message).toBe(
      `no warehouse at ${path}: the directory holds no embedded ClickHouse data (no metadata/ in it); nothing was created`,
    );
    expect(readdirSync(path)).toEqual([]);
  });

  it('a writer creates the missing directories, one level at a time', () => {
    const path = join(fresh(), 'a', 'b', 'chdb');
    expect(open(path)).toBe(OPENED);
    expect(existsSync(path)).toBe(true);
    expect(readdirSync(path)).toEqual([]); // the write probe removed
  });

  it('an engine directory whose layout is whole opens, for a reader and a writer', () => {
    const path = warehouse();
    writeFileSync(join(path, 'metadata', 'driftline.sql.tmp'), ''); // a file beside the links is no damage
    expect(open(path, false)).toBe(OPENED);
    expect(open(path, true)).toBe(OPENED);
  });
});

describe('openEngineDirectory: a damaged layout is refused before the engine reads it as empty', () => {
  it.each([
    [
      'store/ replaced by a plain file (report wrote an empty page, exit 0)',
      (dir: string) => {
        rmSync(join(dir, 'store'), { recursive: true });
        writeFileSync(join(dir, 'store'), '');
      },
      'store is a regular file, not a directory',
    ],
    [
      "a database's metadata gone from store/",
      (dir: string) => rmSync(join(dir, 'store', 'db1'), { recursive: true }),
      'metadata/driftline links to ../store/db1/db1-uuid, which does not exist',
    ],
    [
      "a table's data gone from store/ (the engine recreated it empty)",
      (dir: string) => rmSync(join(dir, 'store', '776', '776-uuid'), { recursive: true }),
      'data/driftline/drift_windows links to ../../store/776/776-uuid, which does not exist',
    ],
    [
      'metadata/ a plain file',
      (dir: string) => {
        rmSync(join(dir, 'metadata'), { recursive: true });
        writeFileSync(join(dir, 'metadata'), '');
      },
      'metadata is a regular file, not a directory',
    ],
  ])('%s', (_name, damage, problem) => {
    const path = warehouse();
    damage(path);
    for (const create of [false, true]) {
      // A reader of a directory whose metadata/ is a file finds no warehouse there; a writer, the damage.
      if (!create && problem.startsWith('metadata is')) continue;
      expect(refusal(path, create).message).toBe(
        `${path} is damaged: ${problem}, so the engine cannot read its tables — restore the directory from a backup, or point DRIFTLINE_CLICKHOUSE_PATH at another`,
      );
    }
  });
});
