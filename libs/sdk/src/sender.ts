import { type ErrorCode, toDriftlineError } from '@driftline/core';
import { deadLetterUnsent, type EventProducer, isolateRejected, type OutboundMessage } from '@driftline/kafka';
import { SendLanes, type SendLanesOptions } from './lanes.js';

/** A buffered message: an encoded event for its topic, or one Kafka refused, owed to `<topic>.dlq`. */
export interface Outgoing extends OutboundMessage {
  readonly key: string;
  readonly value: Buffer;
  /** Set on a message Kafka refused as it is: why, written into its dead letter. */
  readonly rejection?: { readonly code: ErrorCode; readonly reason: string };
}

export interface TopicSenderOptions
  extends Pick<
    SendLanesOptions<Outgoing>,
    'batchSize' | 'maxSendBytes' | 'lingerMs' | 'retryAfterMs' | 'onSent' | 'logger'
  > {
  readonly producer: Pick<EventProducer, 'send'>;
  /** Who the dead letters name as their producer (`driftline.dlq.consumer.group`). */
  readonly producedBy: string;
}

/**
 * The SDK's sends: one lane per topic (SendLanes), and one per `<topic>.dlq` for the events Kafka
 * refuses as they are. A refused event is isolated by halving the send, and moved to its
 * dead-letter lane; the send's other messages are delivered and settled, and the topic goes on.
 * A dead-letter topic that is missing or refuses the writes holds back only its own lane, retried
 * like any topic. Before, the dead-letter write was part of the topic's send: its failure put the
 * whole send back, messages delivered included, and the topic's later messages never went while it
 * failed (the same 4 events written 7 times in 90 s, 16 others stuck: a review).
 */
export class TopicSender {
  readonly lanes: SendLanes<Outgoing>;
  /** Dead-letter lane → the topic its messages were refused by. */
  private readonly dlqSources = new Map<string, string>();
  private deadLetteredCount = 0;

  constructor(private readonly options: TopicSenderOptions) {
    this.lanes = new SendLanes<Outgoing>({
      send: (topic, messages) => this.send(topic, messages),
      batchSize: options.batchSize,
      maxSendBytes: options.maxSendBytes,
      lingerMs: options.lingerMs,
      retryAfterMs: options.retryAfterMs,
      onSent: options.onSent,
      logger: options.logger,
    });
  }

  /** Events written to a `<topic>.dlq`. */
  get deadLettered(): number {
    return this.deadLetteredCount;
  }

  /**
   * Resolves when everything buffered before the call is in Kafka: delivered to its topic, or
   * written to its dead-letter topic. Rejects naming each topic (dead-letter topics included)
   * whose messages are not.
   */
  async flush(): Promise<void> {
    await this.lanes.flush();
    // The events the sends just waited for refused, moved to their dead-letter lanes meanwhile.
    if (this.dlqSources.size > 0) await this.lanes.flush((topic) => this.dlqSources.has(topic));
  }

  private send(topic: string, messages: readonly Outgoing[]): Promise<void> {
    const source = this.dlqSources.get(topic);
    return source === undefined ? this.sendOrDeadLetter(topic, messages) : this.deadLetter(source, topic, messages);
  }

  /**
   * Sends one topic's messages; those Kafka refuses as they are (non-retriable) are isolated by
   * halving and moved to the topic's dead-letter lane, the rest sent (a half sent before a
   * retriable failure may be sent again: at-least-once). A retriable failure is rethrown.
   */
  private async sendOrDeadLetter(topic: string, messages: readonly Outgoing[]): Promise<void> {
    const { producer } = this.options;
    try {
      await producer.send(topic, messages);
      return;
    } catch (error) {
      if (toDriftlineError(error).retriable) throw error;
    }
    const rejected = await isolateRejected(messages, (part) => producer.send(topic, part));
    const dlq = `${topic}.dlq`;
    this.dlqSources.set(dlq, topic);
    for (const { item, error } of rejected) {
      this.lanes.push(dlq, {
        key: item.key,
        value: item.value,
        rejection: { code: error.code, reason: error.message },
      });
    }
  }

  /** Writes refused messages to the dead-letter topic; a failure is rethrown, and the lane retries them. */
  private async deadLetter(topic: string, dlq: string, messages: readonly Outgoing[]): Promise<void> {
    await deadLetterUnsent(
      this.options.producer,
      topic,
      messages.map((m) => ({
        key: m.key,
        value: m.value,
        code: m.rejection?.code ?? 'SINK_REJECTED',
        reason: m.rejection?.reason ?? 'refused by Kafka',
      })),
      this.options.producedBy,
    );
    this.deadLetteredCount += messages.length;
    const first = messages[0];
    this.options.logger.error(
      {
        topic,
        deadLettered: messages.length,
        code: first?.rejection?.code,
        reason: first?.rejection?.reason,
        key: first?.key,
      },
      `driftline SDK: events Kafka will never take as they are went to ${dlq}`,
    );
  }
}
