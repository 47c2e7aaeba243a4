// A grown partials topic (found by a review, /tmp/r3/part.mts): stage one read the merge partition
// count once at start, routed a model's partials by it and sent `closed` markers to the partitions
// below it, and ensureTopics never alters a topic. Grown 2 → 3 while an instance ran, a second
// instance of the group (or the first, restarted) routed over 3: each window completed on two merge
// partitions with half its partials each, 200 of 400 events, no line but a "slow source" warning.
// Raising DRIFTLINE_DRIFT_PARTIALS_PARTITIONS on an existing topic did nothing, silently.
import { growTopic } from '@driftline/kafka/testing';
import { startRunner } from '@driftline/service';
import { eventually, kafkaFor, recordingLogger, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { driftMonitorService, PARTIALS_TOPIC } from '../src/service.js';
import { driftDatabase, sendPredictions } from './deployment.js';
import { driftEnv, driftMonitors } from './runner.js';
import { EXACT, SOURCE_PARTITIONS, scaleStream, settledWindows } from './scale-stream.js';

const stack = inject('stack');

describe('drift-monitor: a partials topic grown under its group', () => {
  const monitors = driftMonitors();

  it('refuses to start an instance (naming the topic and DRIFTLINE_DRIFT_PARTIALS_PARTITIONS); the running one loses nothing', async () => {
    const { reference, stream } = scaleStream(7);
    const { ch, database, path } = await driftDatabase('grown_partials', [reference]);
    const prefix = `${uniqueName('drift-grownp')}.`;
    const partials = `${prefix}${PARTIALS_TOPIC}`;
    const env = driftEnv(
      stack,
      { prefix, partitions: SOURCE_PARTITIONS, database, path },
      { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: '2' },
    );
    const refused = { field: 'DRIFTLINE_DRIFT_PARTIALS_PARTITIONS', message: expect.stringContaining(partials) };
    const warnings: Array<{ obj: object; msg?: string }> = [];
    const running = await startRunner({
      services: [driftMonitorService as never],
      env,
      logger: recordingLogger('warn', warnings),
    });
    try {
      await growTopic(kafkaFor(stack.kafkaBrokers), partials, 3);

      // Before: it started, routed over 3 while the first routed over 2.
      await expect(monitors.start(env)).rejects.toMatchObject(refused);

      await sendPredictions(stack, `${prefix}predictions.v1`, stream);
      expect(await settledWindows(ch)).toEqual(EXACT);
      // It noticed the growth at the rebalance that followed it.
      await eventually(
        async () =>
          warnings.some((w) => w.msg?.startsWith(`the partials topic ${partials} now has 3 partitions`))
            ? true
            : undefined,
        60_000,
        250,
      );
    } finally {
      await running.stop();
    }

    // Restarted, the running instance is refused too (before: it routed over 3, windows in flight split).
    await expect(monitors.start(env)).rejects.toMatchObject(refused);
    await ch.close();
  }, 180_000);

  it('warns when DRIFTLINE_DRIFT_PARTIALS_PARTITIONS differs from an existing topic (which it never alters)', async () => {
    const { reference } = scaleStream(8);
    const { ch, database, path } = await driftDatabase('partials_var', [reference]);
    const prefix = `${uniqueName('drift-pvar')}.`;
    const env = (partitions: string) =>
      driftEnv(
        stack,
        { prefix, partitions: SOURCE_PARTITIONS, database, path },
        { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: partitions },
      );
    await (await monitors.start(env('2'))).stop();
    const lines: Array<{ obj: object; msg?: string }> = [];
    const runner = await startRunner({
      services: [driftMonitorService as never],
      env: env('4'),
      logger: recordingLogger('warn', lines),
    });
    try {
      // Before: nothing said; the topic kept its 2 partitions.
      expect(lines.map((l) => l.msg ?? '')).toContainEqual(
        expect.stringMatching(/^DRIFTLINE_DRIFT_PARTIALS_PARTITIONS is 4, but the partials topic \S+ has 2 partitions/),
      );
    } finally {
      await runner.stop();
    }
    await ch.close();
  }, 120_000);
});
