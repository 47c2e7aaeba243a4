import { setTimeout as sleep } from 'node:timers/promises';
import { contracts, type FeatureEvent } from '@driftline/schemas';
import { uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { SCHEMA_ID_RECHECK_MS, SchemaRegistryCodec } from '../src/index.js';

const stack = inject('stack');

const event: FeatureEvent = {
  event_id: 'e-1',
  view: 'user_stats',
  entity_id: 'user-1',
  event_time: 1_700_000_000_000,
  features: { clicks: 3 },
};

afterEach(() => {
  vi.useRealTimers();
});

describe("a producer's schema id against the real registry", () => {
  it('after its subject is deleted for good, later events carry an id the consumers can read (found by a review)', async () => {
    const url = stack.schemaRegistryUrl;
    const topic = uniqueName('recheck-features');
    const subject = `${topic}-value`;
    // Content of its own (the doc), as a real subject's is: deleting it removes its id.
    const schema = { ...contracts.feature.schema, doc: `recheck test ${topic}` };
    const producer = new SchemaRegistryCodec({ url }).forSchema<FeatureEvent>(schema, topic);
    const consumerDecode = (bytes: Buffer) =>
      new SchemaRegistryCodec({ url }).forSchema<FeatureEvent>(schema, topic).decode(bytes);

    const before = await producer.encode(event);
    expect(await consumerDecode(before)).toMatchObject({ event_id: 'e-1' });
    for (const query of ['', '?permanent=true']) {
      const res = await fetch(`${url}/subjects/${encodeURIComponent(subject)}${query}`, { method: 'DELETE' });
      await res.body?.cancel();
      expect(res.status, `DELETE ${subject}${query}`).toBe(200);
    }
    await expect(consumerDecode(before)).rejects.toMatchObject({ code: 'DECODE_FAILED' });

    // Within the interval the cached id is used (no registry call per event): still the dead one.
    expect((await producer.encode(event)).readUInt32BE(1)).toBe(before.readUInt32BE(1));

    // Once the interval has passed, the producer confirms its id in the background and registers anew.
    vi.useFakeTimers({ now: Date.now() + SCHEMA_ID_RECHECK_MS, toFake: ['Date'] });
    let decoded: FeatureEvent | undefined;
    let after: Buffer | undefined;
    for (let attempt = 0; attempt < 100 && decoded === undefined; attempt++) {
      after = await producer.encode({ ...event, event_id: `e-${attempt}` });
      decoded = await consumerDecode(after).catch(() => undefined);
      if (decoded === undefined) await sleep(100);
    }
    expect(decoded, 'events encoded after the re-check decode').toMatchObject({ view: 'user_stats' });
    expect(after!.readUInt32BE(1)).not.toBe(before.readUInt32BE(1));
    const versions = await fetch(`${url}/subjects/${encodeURIComponent(subject)}/versions`);
    expect(versions.status).toBe(200);
    await versions.body?.cancel();
  });
});
