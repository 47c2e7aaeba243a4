/**
 * Whether the objects and arrays of JSON text nest at most `max` deep: one pass, no allocation,
 * strings skipped with a native search for their closing quote (their quotes and backslashes are
 * ASCII, and UTF-8 continuation bytes never are, so bytes and UTF-16 units read alike). Exact for
 * text JSON.parse accepts; other text fails to parse anyway. Checked before JSON.parse where the
 * input is hostile: V8 parses deep nesting about ten times slower per byte than flat JSON (1 MiB
 * of `[` ~0.15–0.2 s, 16 MiB 3.4 s and ~0.5 GB).
 */
export function jsonDepthWithin(text: string | Uint8Array, max: number): boolean {
  return typeof text === 'string' ? depthWithin(text, max) : bytesDepthWithin(text, max);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function bytesDepthWithin(b: Uint8Array, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === QUOTE) {
      i = stringEnd(b, i);
      if (i === -1) return true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return false;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return true;
}

/** Index of the quote closing the string opened at `open`, or -1 when none does. */
function stringEnd(b: Uint8Array, open: number): number {
  let from = open + 1;
  for (;;) {
    const q = b.indexOf(QUOTE, from);
    if (q === -1) return -1;
    let k = q - 1;
    while (k > open && b[k] === BACKSLASH) k--;
    // An even run of backslashes before the quote escapes only itself.
    if ((q - 1 - k) % 2 === 0) return q;
    from = q + 1;
  }
}

function depthWithin(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = jsonStringEnd(text, i);
      if (i === -1) return true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return false;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return true;
}

/**
 * Index of the quote closing the JSON string opened at `open` in `text`, or -1 when none does:
 * a native search for each quote, skipped when an odd run of backslashes escapes it.
 */
export function jsonStringEnd(text: string, open: number): number {
  let from = open + 1;
  for (;;) {
    const q = text.indexOf('"', from);
    if (q === -1) return -1;
    let k = q - 1;
    while (k > open && text.charCodeAt(k) === BACKSLASH) k--;
    // An even run of backslashes before the quote escapes only itself.
    if ((q - 1 - k) % 2 === 0) return q;
    from = q + 1;
  }
}
