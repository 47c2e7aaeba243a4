import { describe, expect, it } from 'vitest';
import { encodeEntity, parseRowKey, rowKey, windowKey } from '../src/index.js';

describe('key encoding', () => {
  it('is versioned, hash-tagged per (view, entity) and keeps plain ids readable', () => {
    expect(rowKey('dl', 'user_profile', 'user-42')).toBe('dl:v1:{user_profile:user-42}');
    expect(windowKey(rowKey('dl', 'v', 'e'))).toBe('dl:v1:{v:e}:w');
  });

  it('escapes braces, colons, glob characters, percent and non-ASCII so the hash tag cannot break', () => {
    const key = rowKey('dl', 'v', 'a}{b:c*?[x]%é!');
    expect(key).toBe('dl:v1:{v:a%7D%7Bb%3Ac%2A%3F%5Bx%5D%25%C3%A9%21}');
    // Exactly one { and one }: the cluster hash tag is the whole (view, entity) pair.
    expect(key.split('{')).toHaveLength(2);
    expect(key.split('}')).toHaveLength(2);
  });

  it('round-trips through parseRowKey, and different entities never collide', () => {
    const ids = ['a', 'a:b', 'a%3Ab', '{x}', '日本', 'emoji 😀', "it's (ok)", ' '];
    const keys = new Set(ids.map((id) => rowKey('p', 'view', id)));
    expect(keys.size).toBe(ids.length);
    for (const id of ids)
      expect(parseRowKey(rowKey('p', 'view', id))).toEqual({ prefix: 'p', view: 'view', entity: id });
    expect(parseRowKey('other:thing')).toBeUndefined();
  });

  it('refuses empty, oversized and malformed ids', () => {
    expect(() => encodeEntity('')).toThrow(/empty/);
    expect(() => encodeEntity('x'.repeat(2_000))).toThrow(/longer/);
    expect(() => encodeEntity('\uD800')).toThrow(/well-formed/);
  });
});
