/**
 * Secrets never reach an error message or a log line. Two rules, applied wherever text is built
 * from configuration or from a client's error:
 * - the user-info of a URL (`scheme://user:password@host`, `redis://:password@host`) becomes `***`,
 *   up to the last `@` of the authority (a password may hold an `@`: `redis://:p@ss@host`);
 * - the value of a credential-named query parameter (`?password=…`, `&token=…`) becomes `***`.
 */
const SECRET_QUERY =
  /([?&;](?:password|passwd|pwd|pass|token|access_token|api_key|api-key|apikey|auth|secret|sig|signature|x-amz-signature|x-amz-security-token)=)[^&\s#"'`]*/gi;

const isLetter = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
/** `[a-z0-9+.-]`, case-insensitive: the characters of a URL scheme. */
const isSchemeChar = (c: number) => isLetter(c) || isDigit(c) || c === 0x2b || c === 0x2e || c === 0x2d;
/** What a regex `\w` is (ASCII letters, digits, `_`): a scheme starts at a word boundary. */
const isWordChar = (c: number) => isLetter(c) || isDigit(c) || c === 0x5f;
/**
 * Characters that end a URL's authority in free text: whitespace, `/ ? #`, quotes. Not `@`: the
 * user-info runs to the authority's last `@` (stopping at the first one left the rest of a
 * password with an `@` in clear).
 */
const ENDS_AUTHORITY = /[\s/?#"'`]/;

/**
 * `text` with every `scheme://user-info@` turned into `scheme://***@`: what the regex
 * `\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#"'`]+@` (greedy: to the last `@`) replaced, in one pass. The
 * regex backtracked from every word boundary before a "://" (40 KB of `a.` then `a://` took
 * 7.3 s), and messages can quote hostile input. Each "://" is handled once: back over its scheme
 * (which stops at the previous "://"), forward over its authority (which stops at the next "/").
 */
function redactUserInfo(text: string): string {
  let out = '';
  let copied = 0;
  let from = 0;
  for (;;) {
    const sep = text.indexOf('://', from);
    if (sep === -1) break;
    from = sep + 3;
    let start = sep;
    while (start > copied && isSchemeChar(text.charCodeAt(start - 1))) start--;
    // The leftmost letter at a word boundary: the run's first character (when what precedes the
    // run is no word character), or a letter right after `+ . -`.
    let scheme = -1;
    for (let p = start; p < sep; p++) {
      const before = p === 0 ? -1 : text.charCodeAt(p - 1);
      if (isLetter(text.charCodeAt(p)) && (before === -1 || !isWordChar(before))) {
        scheme = p;
        break;
      }
    }
    if (scheme === -1) continue;
    let end = from;
    let at = -1;
    while (end < text.length && !ENDS_AUTHORITY.test(text[end]!)) {
      if (text[end] === '@') at = end;
      end++;
    }
    // An empty user-info (`://@host`) holds nothing to hide.
    if (at <= from) continue;
    out += `${text.slice(copied, from)}***@`;
    copied = at + 1;
    from = copied;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** `text` with URL credentials and credential-named query parameters replaced by `***`. */
export function redactCredentials(text: string): string {
  if (!text.includes('://') && !text.includes('=')) return text;
  return redactUserInfo(text).replace(SECRET_QUERY, '$1***');
}

/**
 * One configuration value (a variable's, not free text) redacted to be echoed in an error: on top
 * of {@link redactCredentials}, everything before its last `@` is `***` (after `scheme://` when
 * there is one). A value that failed to parse may have a password with a space, a quote or a `/`
 * (`redis://:pa/ss@host`), or no scheme at all (`:secret@host`): none of them ends the user-info
 * here, since a value holds one URL at most and hiding too much costs only a less helpful message.
 */
export function redactConfigValue(value: string): string {
  const at = value.lastIndexOf('@');
  if (at === -1) return redactCredentials(value);
  const sep = value.indexOf('://');
  const start = sep !== -1 && sep < at ? sep + 3 : 0;
  return redactCredentials(`${value.slice(0, start)}***${value.slice(at)}`);
}

/** Variable names whose value is a secret: never echoed, not even redacted. */
const SECRET_NAME = /PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE_KEY|API_KEY/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}
