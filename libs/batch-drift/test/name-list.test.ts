// List options (`--ignore a,b`) and the option an error line suggests: a name with a comma, a blank
// at an end or a quote can be given, and a suggestion read back by a shell and the option is that
// name (found by a review: `--ignore x,y` was suggested for the column "x,y" and split in two).
import { fuzzParameters } from '@driftline/test-support/fuzz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { listItem, parseNameList, shellWord, suggestedOption } from '../src/index.js';

/** What a POSIX shell makes of `shellWord`'s output: a plain word, or single-quoted parts. */
function unshell(word: string): string {
  if (!word.startsWith("'")) return word;
  return word.slice(1, -1).replaceAll("'\\''", "'");
}

describe('parseNameList', () => {
  it.each([
    ['a,b', ['a', 'b']],
    [' a , b ', ['a', 'b']],
    ['a\\,b', ['a,b']],
    ['total\\, net', ['total, net']],
    ['x\\ ', ['x ']],
    ['\\ x', [' x']],
    ['C:\\dir', ['C:\\dir']],
    ['a\\\\,b', ['a\\', 'b']],
    ['a\\\\\\,b', ['a\\,b']],
    ['a,', ['a', '']],
  ])('%j → %j', (value, names) => {
    expect(parseNameList(value)).toEqual(names);
  });
});

describe('listItem and suggestedOption', () => {
  it.each([
    ['plain', 'plain', '--ignore plain'],
    ['a,b', 'a\\,b', "--ignore 'a\\,b'"],
    ['total ', 'total\\ ', "--ignore 'total\\ '"],
    ["it's", "it's", "--ignore 'it'\\''s'"],
    ['C:\\dir', 'C:\\dir', "--ignore 'C:\\dir'"],
    ['ends\\', 'ends\\\\', "--ignore 'ends\\\\'"],
  ])('%j is written %j, suggested %j', (name, item, suggestion) => {
    expect(listItem(name)).toBe(item);
    expect(suggestedOption('--ignore', name)).toBe(suggestion);
  });

  it('a name holding control characters is not offered as a word (the error line shows them escaped; a review)', () => {
    for (const name of ['a\tb', 'x\u001b[2J', 'new\nline', 'rtl\u202e'])
      expect(suggestedOption('--ignore', name)).toBe("--ignore and the column's name (it holds control characters)");
  });

  it('a name longer than an error line shows is not offered as a cut word', () => {
    expect(suggestedOption('--ignore', 'n'.repeat(81))).toBe("--ignore and the column's full name");
  });

  it('any list of names, written with listItem and joined by commas (then through a shell), reads back as itself', () => {
    const name = fc
      .string({ unit: fc.constantFrom('a', 'b', ',', '\\', ' ', '\t', "'", '"', 'é', '東', '\u00a0', '-') })
      .filter((n) => n.trim() !== '');
    fc.assert(
      fc.property(fc.array(name, { minLength: 1, maxLength: 5 }), (names) => {
        const value = names.map(listItem).join(',');
        expect(parseNameList(value)).toEqual(names);
        expect(parseNameList(unshell(shellWord(value)))).toEqual(names);
      }),
      fuzzParameters(500),
    );
  });
});
