/**
 * A topic prefix (DRIFTLINE_TOPIC_PREFIX, the SDK's `topicPrefix`): characters Kafka accepts in a
 * topic name. The services and the SDK check prefixes with this one rule.
 */
export const TOPIC_PREFIX_PATTERN = /^[A-Za-z0-9._-]*$/;

/** The rule in words, for messages. */
export const TOPIC_PREFIX_RULE = 'letters, digits, dot, dash, underscore only';

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

/**
 * Longest model or model_version name an event (prediction, label) may carry: each is part of
 * every window key, partial, joined row and alert, so a megabyte name would multiply everywhere.
 */
export const MAX_MODEL_NAME_LENGTH = 256;

/** Why an event's `field` (a model or version name) is refused: empty or too long. */
export function eventNameProblem(field: string, name: string): string | undefined {
  return name.length === 0 || name.length > MAX_MODEL_NAME_LENGTH
    ? `${field} must be 1..${MAX_MODEL_NAME_LENGTH} characters (got ${name.length})`
    : undefined;
}

/** Why an event's model or version name is refused (empty or too long), if it is. */
export function modelNameProblem(model: string, version: string): string | undefined {
  return eventNameProblem('model', model) ?? eventNameProblem('model_version', version);
}

/**
 * Why an alert's model or version name is refused: what its producers can raise, no more. The
 * model 1..256 characters like events'; the version 0..256: the prediction schema accepts an empty
 * version (from a producer other than the SDK, which refuses it as the label-joiner and the
 * drift-monitor do) and the skew-monitor raises alerts for it, which the alert consumers
 * dead-lettered (found by a review). The bound keeps route-glob matching and state keys cheap.
 */
export function alertNameProblem(model: string, version: string): string | undefined {
  const versionProblem =
    version.length > MAX_MODEL_NAME_LENGTH
      ? `model_version must be 0..${MAX_MODEL_NAME_LENGTH} characters (got ${version.length})`
      : undefined;
  return eventNameProblem('model', model) ?? versionProblem;
}
