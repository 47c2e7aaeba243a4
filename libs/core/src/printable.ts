/**
 * Whether a terminal takes UTF-16 unit `c` as a command or lets it change what it shows: C0
 * controls (but newline and tab when `lines`), DEL, C1 controls, and the bidirectional controls
 * that reorder a line (CVE-2021-42574).
 */
function isControl(c: number, lines: boolean): boolean {
  if (c < 0x20) return !(lines && (c === 0x0a || c === 0x09));
  return (
    (c >= 0x7f && c <= 0x9f) ||
    c === 0x200e ||
    c === 0x200f ||
    (c >= 0x202a && c <= 0x202e) ||
    (c >= 0x2066 && c <= 0x2069)
  );
}

/**
 * Text from data (a CSV header, a model name from an event, a message quoting input) made safe to
 * print on a terminal: every control character is written as a `\u001b`-style escape, the rest
 * (non-ASCII letters included) as it is. An ESC in a column name would otherwise reach the
 * terminal as a command (clear the screen, retitle the window, rewrite lines already printed).
 * `lines: true` keeps newlines and tabs (a whole multi-line text); without it a value stays on one
 * line and in its table cell.
 */
export function printable(text: string, options: { readonly lines?: boolean } = {}): string {
  const lines = options.lines ?? false;
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!isControl(c, lines)) continue;
    out += `${text.slice(from, i)}\\u${c.toString(16).padStart(4, '0')}`;
    from = i + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}

/**
 * The first `max` UTF-16 units of `text`, without a surrogate pair cut in half: a lone high
 * surrogate at the end is dropped. A cut emoji made text ClickHouse refuses (its JSON parser
 * rejects the escaped lone surrogate), so one segment value 256 characters long, ending in an
 * emoji, failed the whole performance window insert, every pass.
 */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max);
  const last = cut.charCodeAt(cut.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? cut.slice(0, -1) : cut;
}

/**
 * The one line a person reads on stderr for an error that ends a command or a process:
 * `driftline: <text>` on one line, never a terminal command (messages quote input: names, headers).
 */
export function errorLine(text: string): string {
  return `driftline: ${printable(text.replace(/\s*\n\s*/g, ' '))}\n`;
}
