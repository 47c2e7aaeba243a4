/**
 * Bound on the URL-encoded bytes of one lookup's array parameters. @clickhouse/client sends query
 * parameters in the URL, which every server on the way bounds: ClickHouse's `http_max_uri_size`
 * (1 MiB) and the host's matching limit, but a Node server's default is 16 KiB and a proxy's often
 * 8 KiB. A refused URL is refused again on every retry (REQUEST_URI_TOO_LONG, errors.ts), so a
 * lookup of any number of ids goes in chunks below this bound, never in one query.
 */
export const MAX_LOOKUP_URL_BYTES = 64 * 1024;

/** URL-encoded length of `text` as a query-string value (`URLSearchParams`, as the client encodes it). */
function urlEncodedLength(text: string): number {
  return new URLSearchParams([['', text]]).toString().length - 1;
}

/**
 * Bytes one string adds to an `Array(String)` parameter in the URL: quoted and escaped as
 * @clickhouse/client formats it (`'it\'s'`), URL-encoded, with its comma (`%2C`).
 */
export function arrayElementUrlBytes(value: string): number {
  const escaped = value.replace(/[\t\n\r'\\]/g, (c) => ESCAPES[c] ?? c);
  return urlEncodedLength(`'${escaped}'`) + 3;
}

const ESCAPES: Readonly<Record<string, string>> = { '\t': '\\t', '\n': '\\n', '\r': '\\r', "'": "\\'", '\\': '\\\\' };

/**
 * Consecutive chunks of `items` whose summed `urlBytes` stay within `maxBytes`, in order. An item
 * larger than the bound alone is a chunk of its own: a server may still take it, and one that does
 * not refuses it by name instead of the lookup never being sent.
 */
export function chunksByUrlBytes<T>(
  items: Iterable<T>,
  urlBytes: (item: T) => number,
  maxBytes: number = MAX_LOOKUP_URL_BYTES,
): T[][] {
  const chunks: T[][] = [];
  let chunk: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = urlBytes(item);
    if (chunk.length > 0 && bytes + size > maxBytes) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(item);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}
