// Instances of one group with different DRIFTLINE_DRIFT_WINDOW (found by a review,
// /tmp/r3/winmix.mts): the merge keeps its pending windows by start alone, so a 1 s and a 2 s
// instance fused windows of both sizes — 600, 200, 600, 200 events where one size gave 400 each,
// window ends taken from whichever message came first, windows overlapping — with no log line.
import { PARTIALS_FORMAT, routeModel } from '@driftline/drift';
import { createProducer } from '@driftline/kafka';
import { kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { PARTIALS_TOPIC } from '../src/service.js';
import { driftDatabase, sendPredictions } from './deployment.js';
import { driftEnv, driftMonitors } from './runner.js';
import { EXACT, SOURCE_PARTITIONS, scaleStream, settledWindows, T0 } from './scale-stream.js';

const stack = inject('stack');
const MERGE_PARTITIONS = 2;

describe('drift-monitor: one window size per group', () => {
  const monitors = driftMonitors();

  it('an instance of another size is refused at start (DRIFTLINE_DRIFT_WINDOW); the windows stay exact', async () => {
    const { reference, stream } = scaleStream(42);
    const { ch, database, path } = await driftDatabase('mixed_sizes', [reference]);
    const prefix = `${uniqueName('drift-mixed')}.`;
    const env = (window: string) =>
      driftEnv(
        stack,
        { prefix, partitions: SOURCE_PARTITIONS, database, path },
        { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: String(MERGE_PARTITIONS), DRIFTLINE_DRIFT_WINDOW: window },
      );
    await monitors.start(env('1s'));
    // Before: it joined the group, and the two merges fused 1 s and 2 s windows.
    await expect(monitors.start(env('2s'))).rejects.toMatchObject({
      field: 'DRIFTLINE_DRIFT_WINDOW',
      message: expect.stringMatching(/^DRIFTLINE_DRIFT_WINDOW: 2s, but group \S+ measures windows of 1s/),
    });
    await sendPredictions(stack, `${prefix}predictions.v1`, stream);
    expect(await settledWindows(ch)).toEqual(EXACT);
    await ch.close();
  }, 180_000);

  it("the merge refuses partials of another window length (an instance that started before the group's record): never fused", async () => {
    const { reference, stream } = scaleStream(43);
    const { ch, database, path } = await driftDatabase('other_size', [reference]);
    const prefix = `${uniqueName('drift-osize')}.`;
    const runner = await monitors.start(
      driftEnv(
        stack,
        { prefix, partitions: SOURCE_PARTITIONS, database, path },
        { DRIFTLINE_DRIFT_PARTIALS_PARTITIONS: String(MERGE_PARTITIONS) },
      ),
    );
    // What a 2 s instance owning source partition 0 sends for its first window, ahead of this
    // instance's own: 100 events of fraud and the window's marker, to fraud's merge partition.
    const source = { topic: `${prefix}predictions.v1`, partition: 0, partitions: SOURCE_PARTITIONS };
    const window = { windowStart: T0, windowEnd: T0 + 2000 };
    const partial = {
      type: 'partial',
      format: PARTIALS_FORMAT,
      source,
      model: 'fraud',
      version: 'v1',
      referenceId: reference.referenceId,
      ...window,
      events: 100,
      late: 0,
      summaries: {},
    };
    const marker = {
      type: 'closed',
      format: PARTIALS_FORMAT,
      source,
      ...window,
      closedUntil: window.windowEnd,
      models: [{ model: 'fraud', version: 'v1' }],
    };
    const partition = routeModel('fraud', MERGE_PARTITIONS);
    const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
    try {
      await producer.send(`${prefix}${PARTIALS_TOPIC}`, [
        { key: 'fraud', value: Buffer.from(JSON.stringify(partial)), partition },
        { key: `${source.topic}/0`, value: Buffer.from(JSON.stringify(marker)), partition },
      ]);
    } finally {
      await producer.disconnect();
    }
    await sendPredictions(stack, `${prefix}predictions.v1`, stream);
    // Before: the first window ended at T0 + 2 s with 300 events (the 2 s partial and marker taken
    // for source 0's, whose own were dropped as duplicates).
    expect(await settledWindows(ch)).toEqual(EXACT);
    const dropped = await runner.context.registry.getSingleMetric('driftline_drift_partials_dropped_total')?.get();
    expect(dropped?.values.find((v) => v.labels.reason === 'window_size')?.value).toBe(2);
    await ch.close();
  }, 180_000);
});
