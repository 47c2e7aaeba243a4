import { describe, expect, it } from 'vitest';
import { cutText, printable } from '../src/printable.js';

describe('printable', () => {
  it('escapes terminal commands in a value: ESC sequences, CR, BEL, DEL, C1 and bidi controls', () => {
    expect(printable('\u001b[2J\u001b]0;owned\u0007col')).toBe('\\u001b[2J\\u001b]0;owned\\u0007col');
    expect(printable('a\rb\u007fc\u009bd')).toBe('a\\u000db\\u007fc\\u009bd');
    expect(printable('x\u202eevil\u2066y')).toBe('x\\u202eevil\\u2066y');
  });

  it('keeps a value on one line unless asked to keep lines', () => {
    expect(printable('a\nb\tc')).toBe('a\\u000ab\\u0009c');
    expect(printable('a\nb\tc\r\n', { lines: true })).toBe('a\nb\tc\\u000d\n');
    expect(printable('\u001b[31mred\u001b[0m\n', { lines: true })).toBe('\\u001b[31mred\\u001b[0m\n');
  });

  it('leaves printable text as it is, non-ASCII included', () => {
    const text = 'température ≥ 0.5 — 日本語 😀 "quoted" \\ back';
    expect(printable(text)).toBe(text);
    expect(printable('')).toBe('');
  });
});

describe('cutText', () => {
  it('cuts at most max units and never half a surrogate pair', () => {
    expect(cutText('abc', 5)).toBe('abc');
    expect(cutText('abcdef', 3)).toBe('abc');
    expect(cutText('ab😀c', 3)).toBe('ab'); // the pair would be cut: drop its high half
    expect(cutText('ab😀c', 4)).toBe('ab😀');
    expect(cutText('😀'.repeat(100), 99)).toBe('😀'.repeat(49));
  });
});
