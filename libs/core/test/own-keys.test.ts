import { describe, expect, it } from 'vitest';
import { hasKeysInOrder, ownValue, setOwn } from '../src/own-keys.js';

describe('hasKeysInOrder', () => {
  it('is true only for exactly the keys, in order', () => {
    expect(hasKeysInOrder({ a: 1, b: 2 }, ['a', 'b'])).toBe(true);
    expect(hasKeysInOrder({}, [])).toBe(true);
    expect(hasKeysInOrder({ b: 2, a: 1 }, ['a', 'b'])).toBe(false);
    expect(hasKeysInOrder({ a: 1 }, ['a', 'b'])).toBe(false);
    expect(hasKeysInOrder({ a: 1, b: 2, c: 3 }, ['a', 'b'])).toBe(false);
    expect(hasKeysInOrder({ a: 1 }, undefined)).toBe(false);
  });

  it('counts a key named __proto__ like any other, and an inherited enumerable key against the record', () => {
    const record: Record<string, number> = {};
    setOwn(record, '__proto__', 1);
    setOwn(record, 'x', 2);
    expect(hasKeysInOrder(record, ['__proto__', 'x'])).toBe(true);
    const child = Object.create({ inherited: 1 }) as Record<string, number>;
    child.own = 2;
    expect(hasKeysInOrder(child, ['own'])).toBe(false);
    expect(ownValue(record, '__proto__')).toBe(1);
  });

  it('follows integer-like keys in the order objects list them', () => {
    // Integer-like keys come first, ascending, whatever the insertion order: Object.keys agrees.
    const record = { b: 1, 10: 2, 2: 3 };
    expect(hasKeysInOrder(record, Object.keys(record))).toBe(true);
    expect(hasKeysInOrder(record, ['b', '10', '2'])).toBe(false);
  });
});
