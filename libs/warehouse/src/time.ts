/** ClickHouse DateTime64(3) text for an epoch-ms instant (UTC), as JSONEachRow inserts expect. */
export function chTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}
