// Maps keyed by names from input (model names in a config, feature names in a request, header
// names of a record): a name like `constructor` or `__proto__` is a key like any other.

/**
 * The value under `key` in a map parsed from a config document (`models:` keyed by model name),
 * own keys only: a name such as `constructor` or `toString` is looked up like any other, never
 * found on Object.prototype.
 */
export function ownValue<T>(map: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

/**
 * Sets an own property named by input: `__proto__` is a key like any other (an assignment would
 * set the prototype instead). Plain objects otherwise: a null-prototype object is a dictionary to
 * V8, about 1 µs slower per 10-feature record to build and read.
 */
export function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__')
    Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  else record[key] = value;
}

/**
 * Whether `record`'s enumerable keys are exactly `keys`, in order, without listing them: a for-in
 * over records of one shape allocates nothing, where Object.keys makes an array per record (hot
 * paths compare every record of a batch). An inherited enumerable key makes it false.
 */
export function hasKeysInOrder(record: object, keys: readonly string[] | undefined): boolean {
  if (keys === undefined) return false;
  let i = 0;
  for (const key in record) if (keys[i++] !== key) return false;
  return i === keys.length;
}
