/**
 * Secrets never reach an error message or a log line. Two rules, applied wherever text is built
 * from configuration or from a client's error:
 * - the user-info of a URL (`scheme://user:password@host`, `redis://:password@host`) becomes `***`;
 * - the value of a credential-named query parameter (`?password=…`, `&token=…`) becomes `***`.
 */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'`]+@/gi;
const SECRET_QUERY =
  /([?&;](?:password|passwd|pwd|pass|token|access_token|api_key|apikey|secret|sig|signature)=)[^&\s#"'`]*/gi;

/** `text` with URL credentials and credential-named query parameters replaced by `***`. */
export function redactCredentials(text: string): string {
  if (!text.includes('://') && !text.includes('=')) return text;
  return text.replace(URL_USERINFO, '$1***@').replace(SECRET_QUERY, '$1***');
}

/** Variable names whose value is a secret: never echoed, not even redacted. */
const SECRET_NAME = /PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE_KEY|API_KEY/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}
