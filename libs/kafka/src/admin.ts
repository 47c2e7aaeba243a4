import type { Kafka } from 'kafkajs';

export interface TopicSpec {
  readonly topic: string;
  readonly partitions?: number;
  readonly replicationFactor?: number;
  readonly config?: Readonly<Record<string, string>>;
}

/**
 * Creates the topics that do not exist yet (and never alters existing ones). A freshly created
 * topic's metadata can lag on the broker ("does not host this topic-partition"), so creation is
 * retried a few times before giving up.
 */
export async function ensureTopics(kafka: Kafka, topics: readonly TopicSpec[]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await createMissingTopics(kafka, topics);
      return;
    } catch (error) {
      const type = (error as { type?: unknown }).type;
      const transient =
        type === 'UNKNOWN_TOPIC_OR_PARTITION' ||
        type === 'LEADER_NOT_AVAILABLE' ||
        /does not host this topic-partition/.test(String(error));
      if (!transient || attempt >= 5) throw error;
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
    }
  }
}

async function createMissingTopics(kafka: Kafka, topics: readonly TopicSpec[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t.topic));
    if (missing.length === 0) return;
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((t) => ({
        topic: t.topic,
        numPartitions: t.partitions ?? 1,
        replicationFactor: t.replicationFactor ?? 1,
        configEntries: Object.entries(t.config ?? {}).map(([name, value]) => ({ name, value })),
      })),
    });
  } finally {
    await admin.disconnect();
  }
}

/** Committed offset per partition of a group (-1 when nothing is committed). */
export async function committedOffsets(kafka: Kafka, groupId: string, topic: string): Promise<Map<number, bigint>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [result] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map((result?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}
