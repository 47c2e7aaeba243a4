import { describe, expect, it } from 'vitest';
import { encodeEntity, parseRowKey, rowKey, v1RowKey, windowKey } from '../src/index.js';

describe('key encoding', () => {
  it('is versioned, hash-tagged per (view, entity) and keeps plain ids readable', () => {
    expect(rowKey('dl', 'user_profile', 'user-42')).toBe('dl:v2:{user_profile:user-42}');
    expect(windowKey(rowKey('dl', 'v', 'e'))).toBe('dl:v2:{v:e}:w');
  });

  it("names the same row's layout-v1 key, in the same hash tag", () => {
    expect(v1RowKey(rowKey('dl', 'v', 'e'))).toBe('dl:v1:{v:e}');
    // A prefix or entity spelling a version cannot move the replacement.
    expect(v1RowKey(rowKey('v2', 'v2', 'v2:{v2}'))).toBe('v2:v1:{v2:v2%3A%7Bv2%7D}');
    expect(windowKey(v1RowKey(rowKey('dl', 'v', 'e')))).toBe('dl:v1:{v:e}:w');
  });

  it('escapes braces, colons, glob characters, percent and non-ASCII so the hash tag cannot break', () => {
    const key = rowKey('dl', 'v', 'a}{b:c*?[x]%é!');
    expect(key).toBe('dl:v2:{v:a%7D%7Bb%3Ac%2A%3F%5Bx%5D%25%C3%A9%21}');
    // Exactly one { and one }: the cluster hash tag is the whole (view, entity) pair.
    expect(key.split('{')).toHaveLength(2);
    expect(key.split('}')).toHaveLength(2);
  });

  it('round-trips through parseRowKey, and different entities never collide', () => {
    const ids = ['a', 'a:b', 'a%3Ab', '{x}', '日本', 'emoji 😀', "it's (ok)", ' '];
    const keys = new Set(ids.map((id) => rowKey('p', 'view', id)));
    expect(keys.size).toBe(ids.length);
    for (const id of ids) {
      const key = rowKey('p', 'view', id);
      expect(parseRowKey(key)).toEqual({ prefix: 'p', version: 'v2', view: 'view', entity: id });
      expect(parseRowKey(v1RowKey(key))).toEqual({ prefix: 'p', version: 'v1', view: 'view', entity: id });
    }
    expect(parseRowKey('other:thing')).toBeUndefined();
    expect(parseRowKey('p:v3:{view:e}')).toBeUndefined();
  });

  it('refuses empty, oversized and malformed ids', () => {
    expect(() => encodeEntity('')).toThrow(/empty/);
    expect(() => encodeEntity('x'.repeat(2_000))).toThrow(/longer/);
    expect(() => encodeEntity('\uD800')).toThrow(/well-formed/);
  });
});
