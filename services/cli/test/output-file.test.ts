import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeError, EXIT } from '../src/describe-error.js';
import { writeOutput } from '../src/output-file.js';

/** A disk that fills up half-way through the page: part of it is written, then ENOSPC. */
function fullDisk(fd: number, text: string): void {
  writeSync(fd, text.slice(0, text.length >> 1));
  throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
}

function failure(run: () => void): { line: string; code: number } {
  try {
    run();
  } catch (error) {
    return describeError(error, 'driftline drift --help');
  }
  throw new Error('the write did not fail');
}

describe('--html / --out: the page is written whole or not at all (found by a review)', () => {
  it('a full disk half-way keeps the previous page, leaves no temporary file, exits 1 saying what to free', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-out-full-'));
    const page = join(dir, 'report.html');
    writeFileSync(page, 'the previous report');
    const { line, code } = failure(() => writeOutput('--html', page, 'x'.repeat(41_000), fullDisk));
    expect(code).toBe(EXIT.internal);
    expect(line).toBe(
      `--html: cannot write ${page} (ENOSPC); the previous ${page} is unchanged — no space left on that file system: free space or inodes (df -h, df -i) and start again`,
    );
    expect(readFileSync(page, 'utf8')).toBe('the previous report');
    expect(readdirSync(dir)).toEqual(['report.html']);
  });

  it('a full disk for a new page leaves nothing behind', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-out-full-'));
    expect(failure(() => writeOutput('--out', join(dir, 'new.html'), 'page', fullDisk)).code).toBe(EXIT.internal);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a device that is full (/dev/full, written in place) is exit 1 with the hint, not a usage error (2)', () => {
    const { line, code } = failure(() => writeOutput('--html', '/dev/full', 'page'));
    expect(code).toBe(EXIT.internal);
    expect(line).toMatch(
      /^--html: cannot write \/dev\/full \(ENOSPC\) — no space left on that file system: free space/,
    );
  });

  it('replaces the page, keeping its permissions; through a symbolic link the target is replaced, the link kept', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-out-ok-'));
    const page = join(dir, 'page.html');
    writeFileSync(page, 'old');
    chmodSync(page, 0o640);
    writeOutput('--out', page, 'new');
    expect(readFileSync(page, 'utf8')).toBe('new');
    expect(statSync(page).mode & 0o777).toBe(0o640);
    const link = join(dir, 'link.html');
    symlinkSync('page.html', link);
    writeOutput('--out', link, 'through the link');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(page, 'utf8')).toBe('through the link');
    // Dangling: the page is created where the link points.
    const dangling = join(dir, 'dangling.html');
    symlinkSync('created.html', dangling);
    writeOutput('--out', dangling, 'created');
    expect(readlinkSync(dangling)).toBe('created.html');
    expect(readFileSync(join(dir, 'created.html'), 'utf8')).toBe('created');
    expect(readdirSync(dir).sort()).toEqual(['created.html', 'dangling.html', 'link.html', 'page.html']);
  });

  it.each(['EBUSY', 'EPERM', 'EXDEV', 'EACCES'])(
    'an existing page the rename fails for (%s: a bind-mounted file, a shared file in a sticky directory) is written in place, no temporary file left (found by a regression review: exit 2 after all the work)',
    (code) => {
      const dir = mkdtempSync(join(tmpdir(), 'cli-out-rename-'));
      const page = join(dir, 'report.html');
      writeFileSync(page, 'the previous report');
      let renames = 0;
      const refused = (from: string, to: string) => {
        renames++;
        throw Object.assign(new Error(`${code}: rename '${from}' -> '${to}'`), { code });
      };
      writeOutput('--html', page, 'the new report', undefined, refused);
      expect(renames).toBe(1);
      expect(readFileSync(page, 'utf8')).toBe('the new report');
      expect(readdirSync(dir)).toEqual(['report.html']);
    },
  );

  it('a new page the rename fails for is still an error (nothing to write in place), no temporary file left', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-out-rename-'));
    const refused = () => {
      throw Object.assign(new Error('EPERM: rename'), { code: 'EPERM' });
    };
    const { code } = failure(() => writeOutput('--out', join(dir, 'new.html'), 'page', undefined, refused));
    expect(code).toBe(EXIT.usage);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a hard-linked page is written in place: both names see the new page (a rename split them)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-out-link-'));
    const page = join(dir, 'report.html');
    const other = join(dir, 'published.html');
    writeFileSync(page, 'the previous report');
    linkSync(page, other);
    writeOutput('--out', page, 'the new report');
    expect(readFileSync(page, 'utf8')).toBe('the new report');
    expect(readFileSync(other, 'utf8')).toBe('the new report');
    expect(statSync(page).ino).toBe(statSync(other).ino);
    expect(readdirSync(dir).sort()).toEqual(['published.html', 'report.html']);
  });
});
