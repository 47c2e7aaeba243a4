import { ConfigError, TOPIC_PREFIX_PATTERN, TOPIC_PREFIX_RULE } from '@driftline/core';
import { contracts } from '@driftline/schemas';

/** Kafka's longest topic name. */
const MAX_TOPIC_LENGTH = 249;

/** The longest name the SDK writes to after the prefix: a contract topic's `.dlq`. */
const LONGEST_SUFFIX = Math.max(
  ...[contracts.feature, contracts.prediction, contracts.label].map((c) => `${c.defaultTopic}.dlq`.length),
);

/** Longest accepted prefix: every topic the SDK writes to stays a valid Kafka name. */
const MAX_TOPIC_PREFIX_LENGTH = MAX_TOPIC_LENGTH - LONGEST_SUFFIX;

/** Why `prefix` cannot start a topic name, or undefined when it can. */
function topicPrefixProblem(prefix: unknown): string | undefined {
  if (typeof prefix !== 'string') return `must be a string, got ${prefix === null ? 'null' : typeof prefix}`;
  if (!TOPIC_PREFIX_PATTERN.test(prefix)) {
    return `${TOPIC_PREFIX_RULE} (got ${JSON.stringify(prefix)})`;
  }
  if (prefix.length > MAX_TOPIC_PREFIX_LENGTH) {
    return `at most ${MAX_TOPIC_PREFIX_LENGTH} characters, so that its topics stay within Kafka's ${MAX_TOPIC_LENGTH} (got ${prefix.length})`;
  }
  return undefined;
}

/** `prefix` (default '') when it is a valid topic prefix; otherwise a ConfigError naming `name`. */
export function checkedTopicPrefix(name: string, prefix: unknown): string {
  if (prefix === undefined) return '';
  const problem = topicPrefixProblem(prefix);
  if (problem !== undefined) throw new ConfigError(name, problem);
  return prefix as string;
}
