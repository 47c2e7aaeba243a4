// The bytes of each hostile kind. Valid-schema kinds (bad event times, undeclared views) go through
// the real codec; the rest are hand-made Avro that no codec would write.
import type { TopicCodec } from '@driftline/codec';
import type { FeatureEvent, LabelEvent, PredictionEvent } from '@driftline/schemas';
import { avroDouble, avroString, HUGE_COUNT, wire, zigzag } from './avro.js';
import type { HostileRecord, Topic } from './traffic.js';

/** 1899-12-31T23:59:59.999Z */
const PRE_1900 = -2_208_988_800_001;
/** 1990-01-01: after 1900 but before the default minimum (2000-01-01). */
const BEFORE_MIN = 631_152_000_000;
/** Larger than a DLQ request may be (512 KiB): the dead letter must land truncated, with the flag. */
export const OVERSIZED_BYTES = 700 * 1024;

export interface Codecs {
  readonly feature: TopicCodec<FeatureEvent>;
  readonly prediction: TopicCodec<PredictionEvent>;
  readonly label: TopicCodec<LabelEvent>;
}

function withTime<T extends { event_time: number }>(event: T, time: number): T {
  return { ...event, event_time: time };
}

/** A body whose map (or first string, for labels) claims about 2^63 entries in a few bytes. */
function hugeBlockBody(topic: Topic, base: HostileRecord['base']): Buffer {
  if (topic === 'label') return Buffer.concat([HUGE_COUNT, Buffer.from('x')]);
  if (topic === 'feature') {
    const e = base as FeatureEvent;
    return Buffer.concat([
      avroString(e.event_id),
      avroString(e.view),
      avroString(e.entity_id),
      zigzag(e.event_time),
      HUGE_COUNT,
    ]);
  }
  const p = base as PredictionEvent;
  return Buffer.concat([
    avroString(p.prediction_id),
    avroString(p.model),
    avroString(p.model_version),
    avroString(p.entity_id),
    zigzag(p.event_time),
    HUGE_COUNT,
    avroDouble(0.5),
  ]);
}

export async function hostileBytes(record: HostileRecord, codecs: Codecs, start: number): Promise<Buffer> {
  const codec = codecs[record.topic] as TopicCodec<HostileRecord['base']>;
  const base = record.base;
  const valid = () => codec.encode(base);
  const schemaId = async () => (await valid()).readUInt32BE(1);
  switch (record.kind) {
    case 'truncated': {
      const bytes = await valid();
      return bytes.subarray(0, Math.max(6, Math.floor(bytes.length * 0.6)));
    }
    case 'huge-block-count':
      return wire(await schemaId(), hugeBlockBody(record.topic, base));
    case 'unknown-schema-id':
      return wire(0x7fff_0000 + (record.key.length % 1000), (await valid()).subarray(5));
    case 'wrong-magic':
      return wire(await schemaId(), (await valid()).subarray(5), 1);
    case 'empty':
      return Buffer.alloc(0);
    case 'event-time-microseconds':
      return codec.encode(withTime(base, base.event_time * 1000));
    case 'event-time-pre-1900':
      return codec.encode(withTime(base, PRE_1900));
    case 'event-time-before-min':
      return codec.encode(withTime(base, BEFORE_MIN));
    case 'event-time-far-future':
      return codec.encode(withTime(base, start + 3 * 86_400_000));
    case 'undeclared-view':
      return codecs.feature.encode({ ...(base as FeatureEvent), view: 'no_such_view' });
    case 'undeclared-feature':
      // No declared name at all: poison. Beside a declared one, an undeclared value is ignored and
      // the event written (libs/features, validateFeatureEvent), so it would not be hostile.
      return codecs.feature.encode({ ...(base as FeatureEvent), features: { shoe_size: 44, shoe_width: 9 } });
    case 'oversized':
      return codecs.feature.encode({
        ...(base as FeatureEvent),
        view: 'no_such_view',
        features: { blob: 'x'.repeat(OVERSIZED_BYTES) },
      });
  }
}
