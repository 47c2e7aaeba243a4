/** Items by key, in first-seen order of the keys and input order within each. */
export function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list === undefined) out.set(k, [item]);
    else list.push(item);
  }
  return out;
}

/** `2025-01-01 06:00Z`-style UTC time for captions and tables. */
export const iso = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').replace('.000Z', 'Z');
