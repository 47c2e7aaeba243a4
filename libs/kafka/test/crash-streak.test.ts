import { admitLine } from '@driftline/core';
import { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { type CrashStreak, crashLooping, namesMissingTopic, recordCrash } from '../src/crash-streak.js';

const STALL_MS = 5_000;
const QUIET_MS = 120_000;

/** kafkajs' answer for a deleted topic, as its protocol layer builds it. */
const unknownTopic = () =>
  new KafkaJSProtocolError({
    type: 'UNKNOWN_TOPIC_OR_PARTITION',
    code: 3,
    retriable: true,
    message: 'This server does not host this topic-partition',
  } as never);
const refused = () => new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:1', {});

/** Crashes with `error` every second from 0 to `untilMs`. */
function crashEverySecond(error: () => Error, untilMs: number): CrashStreak | undefined {
  let streak: CrashStreak | undefined;
  for (let at = 0; at <= untilMs; at += 1_000) streak = recordCrash(streak, error(), at, QUIET_MS);
  return streak;
}

describe('crash streaks: only missing topics make the consumer unhealthy', () => {
  it('names a missing topic, also wrapped, and never an unreachable broker', () => {
    expect(namesMissingTopic(unknownTopic())).toBe(true);
    expect(namesMissingTopic(new KafkaJSNumberOfRetriesExceeded(unknownTopic(), { retryCount: 5, retryTime: 1 }))).toBe(
      true,
    );
    expect(namesMissingTopic({ name: 'KafkaJSTopicMetadataNotLoaded', message: 'Topic metadata not loaded' })).toBe(
      true,
    );
    expect(namesMissingTopic(refused())).toBe(false);
    expect(namesMissingTopic(new KafkaJSNumberOfRetriesExceeded(refused(), { retryCount: 5, retryTime: 1 }))).toBe(
      false,
    );
    expect(namesMissingTopic(new Error('Request timed out'))).toBe(false);
  });

  it('a Kafka outage longer than the stall timeout stays healthy', () => {
    const streak = crashEverySecond(refused, 3 * STALL_MS);
    expect(streak?.count).toBe(16);
    expect(crashLooping(streak, 3 * STALL_MS, STALL_MS, QUIET_MS)).toBe(false);
  });

  it('a missing topic for the stall timeout is unhealthy, until a quiet period or another cause', () => {
    const streak = crashEverySecond(unknownTopic, STALL_MS);
    expect(crashLooping(streak, STALL_MS, STALL_MS, QUIET_MS)).toBe(true);
    expect(crashLooping(streak, STALL_MS + QUIET_MS, STALL_MS, QUIET_MS)).toBe(false);
    // Unreachable brokers after it: an outage, whose crashes say nothing of the topic.
    const outage = recordCrash(streak, refused(), STALL_MS + 1_000, QUIET_MS);
    expect(crashLooping(outage, STALL_MS + 1_000, STALL_MS, QUIET_MS)).toBe(false);
  });

  it('counts missing-topic crashes from the first one, not from an outage before them', () => {
    let streak = crashEverySecond(refused, 10_000);
    for (let at = 11_000; at <= 11_000 + STALL_MS - 1_000; at += 1_000)
      streak = recordCrash(streak, unknownTopic(), at, QUIET_MS);
    expect(crashLooping(streak, 11_000 + STALL_MS - 1_000, STALL_MS, QUIET_MS)).toBe(false);
    streak = recordCrash(streak, unknownTopic(), 11_000 + STALL_MS, QUIET_MS);
    expect(crashLooping(streak, 11_000 + STALL_MS, STALL_MS, QUIET_MS)).toBe(true);
  });

  it('logs the first crash of a streak, then one a minute with the count left out; a new streak at once', () => {
    const MINUTE = 60_000;
    let streak = recordCrash(undefined, refused(), 0, QUIET_MS);
    expect(admitLine(streak, 0, MINUTE)).toBe(0);
    for (let at = 1_000; at < MINUTE; at += 1_000) {
      streak = recordCrash(streak, refused(), at, QUIET_MS);
      expect(admitLine(streak, at, MINUTE)).toBeUndefined();
    }
    streak = recordCrash(streak, refused(), MINUTE, QUIET_MS);
    expect(admitLine(streak, MINUTE, MINUTE)).toBe(59);
    streak = recordCrash(streak, refused(), MINUTE + QUIET_MS, QUIET_MS);
    expect(admitLine(streak, MINUTE + QUIET_MS, MINUTE)).toBe(0);
  });
});
