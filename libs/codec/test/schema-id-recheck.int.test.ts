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

    // Once the interval has passed, the first value encoded (hours later, on a rare topic) finds the
    // schema gone (Apicurio's look-up answers 40401), registers anew and is framed with the new id
    // (found by a review: the confirmation ran behind it, and that value carried the dead id).
    vi.useFakeTimers({ now: Date.now() + 5 * 3_600_000, toFake: ['Date'] });
    const after = await producer.encode({ ...event, event_id: 'e-late' });
    expect(after.readUInt32BE(1)).not.toBe(before.readUInt32BE(1));
    expect(await consumerDecode(after), 'the first event encoded after the interval decodes').toMatchObject({
      event_id: 'e-late',
    });
    const versions = await fetch(`${url}/subjects/${encodeURIComponent(subject)}/versions`);
    expect(versions.status).toBe(200);
    await versions.body?.cancel();
  });

  it("a confirmation leaves the subject's compatibility level alone: an operator's NONE stays (found by a review: reset to BACKWARD every minute)", async () => {
    const url = stack.schemaRegistryUrl;
    const topic = uniqueName('recheck-level');
    const config = `${url}/config/${encodeURIComponent(`${topic}-value`)}`;
    const schema = { ...contracts.feature.schema, doc: `recheck level test ${topic}` };
    const producer = new SchemaRegistryCodec({ url }).forSchema<FeatureEvent>(schema, topic);
    const id = (await producer.encode(event)).readUInt32BE(1);
    const level = async () =>
      ((await (await fetch(config)).json()) as { compatibilityLevel?: string }).compatibilityLevel;
    expect(await level()).toBe('FULL');

    // The operator's migration step: NONE, a breaking schema registered by hand, then the level back.
    const put = await fetch(config, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ compatibility: 'NONE' }),
    });
    await put.body?.cancel();
    expect(put.status).toBe(200);
    vi.useFakeTimers({ now: Date.now() + SCHEMA_ID_RECHECK_MS, toFake: ['Date'] });
    expect((await producer.encode(event)).readUInt32BE(1)).toBe(id);
    vi.useRealTimers();
    // Long enough for a confirmation that ran behind the encode (GET config, PUT) to have landed.
    await sleep(1_000);
    expect(await level()).toBe('NONE');
  });
});
