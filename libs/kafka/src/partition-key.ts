/**
 * The one key of a (topic, partition) in the consumer's maps and sets. Unambiguous: Kafka topic
 * names are `[a-zA-Z0-9._-]`, never `/`.
 */
export function partitionKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}
