/**
 * Model and version names: each names one directory of the trainer's artifact layout
 * (`<dir>/<model>/<version>`), so it must be a plain path segment — no separator, no `.`/`..`, no
 * control character, nothing a log line or a card could be broken by. The trainer, the
 * model-server and the CLI check names with this one rule.
 */
const ARTIFACT_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** The rule in words, for messages. */
export const ARTIFACT_NAME_RULE = '1-128 of A-Z a-z 0-9 . _ -, starting with a letter, a digit or _';

export function isArtifactName(name: string): boolean {
  return ARTIFACT_NAME.test(name);
}
