import { isDeepStrictEqual } from 'node:util';
import { contracts } from '@driftline/schemas';
import {
  HAS_CLASS,
  HAS_ROLE,
  HAS_SCORES,
  HAS_UNSCORED,
  type PackedPredictions,
  textSpan,
} from './packed-predictions.js';

/**
 * predictions.v1 values written straight from the packed hand-off, in the Confluent wire format
 * (magic byte, schema id, Avro body), without building the records as objects and walking them
 * with avsc: 2.1–2.2 µs a record against 6.0–6.4 µs for unpacking, avsc's validation and its
 * encoding (10 features and 2 scores, alternated medians on a busy moment of this machine); that
 * was the log thread's largest cost. Map keys shared by a batch (feature and version names) are
 * encoded once per batch.
 *
 * The bytes are avsc's for the same record (the unit test compares them on generated records),
 * except that a lone UTF-16 surrogate is written as U+FFFD, as Buffer does, where avsc writes the
 * surrogate's own bytes (not UTF-8) in a short string. Written for the schema in
 * {@link DIRECT_SCHEMA_FIELDS}: {@link directEncodingApplies} tells whether the contract is still
 * that one, and the log falls back to the codec when it is not.
 */

/** The fields of predictions.v1 this encoder writes, in order, with their Avro types. */
const DIRECT_SCHEMA_FIELDS = [
  ['prediction_id', 'string'],
  ['model', 'string'],
  ['model_version', 'string'],
  ['entity_id', 'string'],
  ['event_time', { type: 'long', logicalType: 'timestamp-millis' }],
  ['features', { type: 'map', values: ['null', 'double', 'string', 'boolean'] }],
  ['prediction', 'double'],
  ['predicted_class', ['null', 'string']],
  ['role', 'string'],
  ['scores', ['null', { type: 'map', values: 'double' }]],
  ['unscored', ['null', { type: 'map', values: 'string' }]],
] as const;

/** What `role` holds when a record has none: the schema's default, as avsc writes it. */
const DEFAULT_ROLE = 'production';

/**
 * True when the predictions.v1 contract has exactly the fields and types this encoder writes, and
 * the default of `role` it writes.
 */
export function directEncodingApplies(schema: unknown = contracts.prediction.schema): boolean {
  const fields = (schema as { fields?: unknown }).fields;
  if (!Array.isArray(fields) || fields.length !== DIRECT_SCHEMA_FIELDS.length) return false;
  return DIRECT_SCHEMA_FIELDS.every(([name, type], i) => {
    const field = fields[i] as { name?: unknown; type?: unknown; default?: unknown };
    return (
      field.name === name && isDeepStrictEqual(field.type, type) && (name !== 'role' || field.default === DEFAULT_ROLE)
    );
  });
}

/** The Confluent frame: magic byte 0, then the schema id (4 bytes, big-endian). */
const HEADER_BYTES = 5;
/** Union branches: features' values ["null", "double", "string", "boolean"], and ["null", X]. */
const NULL_BRANCH = 0;
const DOUBLE_BRANCH = 1;
const STRING_BRANCH = 2;
const BOOLEAN_BRANCH = 3;
const SECOND_BRANCH = 1;

export interface DirectlyEncoded {
  /**
   * Per record, its framed value (views of one buffer; the schema id bytes are zero until
   * {@link setSchemaId}), or undefined for a record this encoder does not write: one whose
   * `event_time` is not a long, which the codec must see to refuse it by name.
   */
  readonly values: Array<Buffer | undefined>;
}

/** A long avsc writes: an integer within ±(2^53 − 2) (it refuses 2^53 − 1, whose zigzag is not exact). */
function isAvscLong(n: number): boolean {
  return Number.isInteger(n) && n >= -LONG_LIMIT && n <= LONG_LIMIT;
}

const LONG_LIMIT = 2 ** 53 - 2;

/** Writes the schema id into a value's Confluent header. */
export function setSchemaId(value: Buffer, id: number): void {
  value.writeUInt32BE(id, 1);
}

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A growable byte buffer written front to back. */
class Out {
  pos = 0;

  constructor(public buf: Buffer) {}

  ensure(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + bytes));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  /** Avro's long: zigzag, then base-128 little-endian groups (avsc's arithmetic). */
  long(n: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    if (n >= -1073741824 && n < 1073741824) {
      let m = n >= 0 ? n << 1 : (~n << 1) | 1;
      while (m > 0x7f) {
        buf[pos++] = (m & 0x7f) | 0x80;
        m >>>= 7;
      }
      buf[pos++] = m;
    } else {
      let f = n >= 0 ? n * 2 : -n * 2 - 1;
      while (f >= 128) {
        buf[pos++] = (f % 128) | 0x80;
        f = Math.floor(f / 128);
      }
      buf[pos++] = f;
    }
    this.pos = pos;
  }

  /** Avro's double: 8 bytes little-endian (the bytes of a Float64Array on a little-endian host). */
  double(v: number): void {
    this.ensure(8);
    const buf = this.buf;
    const pos = this.pos;
    if (LITTLE_ENDIAN) {
      f64[0] = v;
      buf[pos] = f64Bytes[0]!;
      buf[pos + 1] = f64Bytes[1]!;
      buf[pos + 2] = f64Bytes[2]!;
      buf[pos + 3] = f64Bytes[3]!;
      buf[pos + 4] = f64Bytes[4]!;
      buf[pos + 5] = f64Bytes[5]!;
      buf[pos + 6] = f64Bytes[6]!;
      buf[pos + 7] = f64Bytes[7]!;
      this.pos = pos + 8;
    } else this.pos = buf.writeDoubleLE(v, pos);
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** A few bytes (an encoded map key): copied by hand, as `set` costs more than that for so few. */
  bytes(b: Uint8Array): void {
    const n = b.length;
    this.ensure(n);
    const buf = this.buf;
    const pos = this.pos;
    for (let i = 0; i < n; i++) buf[pos + i] = b[i]!;
    this.pos = pos + n;
  }

  /** Avro's string: its UTF-8 length, then its bytes (in one pass from char codes while ASCII). */
  string(s: string): void {
    const n = s.length;
    const start = this.pos;
    this.long(n);
    this.ensure(n);
    const buf = this.buf;
    const pos = this.pos;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        this.pos = start;
        this.utf8(s);
        return;
      }
      buf[pos + i] = c;
    }
    this.pos = pos + n;
  }

  /** Avro's string from its UTF-8 bytes, `from[start..end)`. */
  utf8Bytes(from: Uint8Array, start: number, end: number): void {
    const n = end - start;
    this.long(n);
    this.ensure(n);
    const buf = this.buf;
    const pos = this.pos;
    if (n <= 64) for (let i = 0; i < n; i++) buf[pos + i] = from[start + i]!;
    else buf.set(from.subarray(start, end), pos);
    this.pos = pos + n;
  }

  private utf8(s: string): void {
    const len = Buffer.byteLength(s, 'utf8');
    this.long(len);
    this.ensure(len);
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
  }
}

/** Where a batch is written before its exact copy; reused (a thread encodes one batch at a time). */
const scratch = new Out(Buffer.allocUnsafe(64 * 1024));

/** The Avro string of each name of a list (a map's keys): encoded once per batch. */
function encodedNames(names: readonly string[]): Uint8Array[] {
  const out = new Out(Buffer.allocUnsafe(256));
  return names.map((name) => {
    out.pos = 0;
    out.string(name);
    return Uint8Array.from(out.buf.subarray(0, out.pos));
  });
}

/** The framed predictions.v1 value of every record of `p` (see {@link DirectlyEncoded}). */
export function encodePacked(p: PackedPredictions): DirectlyEncoded {
  const out = scratch;
  out.pos = 0;
  const nameBytes = new Map<number, Uint8Array[]>();
  const namesOf = (index: number): Uint8Array[] => {
    let encoded = nameBytes.get(index);
    if (encoded === undefined) {
      encoded = encodedNames(p.names[index]!);
      nameBytes.set(index, encoded);
    }
    return encoded;
  };
  const text = p.textBytes;
  const spans = p.textSpans;
  const ends = new Int32Array(p.count).fill(-1);
  const starts = new Int32Array(p.count);
  let at = 0;
  let other = 0;
  let unscored = 0;
  for (let r = 0; r < p.count; r++) {
    const t = textSpan(r, 0);
    const flag = p.flags[r]!;
    const eventTime = p.numbers[at]!;
    const keys = namesOf(p.featureNames[r]!);
    const scoreKeys = flag & HAS_SCORES ? namesOf(p.scoreNames[r]!) : undefined;
    const skipped = 2 + keys.length + (scoreKeys?.length ?? 0);
    if (!isAvscLong(eventTime)) {
      // Not a long: left to the codec, which refuses it with the field's name.
      at += skipped;
      while (p.others[other] === r) other += 3;
      if (flag & HAS_UNSCORED) unscored++;
      continue;
    }
    const prediction = p.numbers[at + 1]!;
    at += 2;
    starts[r] = out.pos;
    for (let i = 0; i < HEADER_BYTES; i++) out.byte(0); // magic byte 0; the schema id when sent
    out.utf8Bytes(text, spans[t]!, spans[t + 1]!);
    out.utf8Bytes(text, spans[t + 2]!, spans[t + 3]!);
    out.utf8Bytes(text, spans[t + 4]!, spans[t + 5]!);
    out.utf8Bytes(text, spans[t + 6]!, spans[t + 7]!);
    out.long(eventTime);
    if (keys.length > 0) {
      out.long(keys.length);
      for (let i = 0; i < keys.length; i++) {
        out.bytes(keys[i]!);
        const value = p.numbers[at++]!;
        if (p.others[other] === r && p.others[other + 1] === i) {
          const v = p.others[other + 2]!;
          other += 3;
          if (v === null) out.byte(NULL_BRANCH);
          else if (typeof v === 'string') {
            out.byte(STRING_BRANCH * 2);
            out.string(v);
          } else {
            out.byte(BOOLEAN_BRANCH * 2);
            out.byte(v === true ? 1 : 0);
          }
        } else {
          out.byte(DOUBLE_BRANCH * 2);
          out.double(value);
        }
      }
    }
    out.byte(0); // end of the map's blocks
    out.double(prediction);
    if (flag & HAS_CLASS) {
      out.byte(SECOND_BRANCH * 2);
      out.utf8Bytes(text, spans[t + 10]!, spans[t + 11]!);
    } else out.byte(NULL_BRANCH); // absent or null
    if (flag & HAS_ROLE) out.utf8Bytes(text, spans[t + 8]!, spans[t + 9]!);
    else out.string(DEFAULT_ROLE);
    if (scoreKeys === undefined)
      out.byte(NULL_BRANCH); // absent or null
    else {
      out.byte(SECOND_BRANCH * 2);
      if (scoreKeys.length > 0) {
        out.long(scoreKeys.length);
        for (let i = 0; i < scoreKeys.length; i++) {
          out.bytes(scoreKeys[i]!);
          out.double(p.numbers[at++]!);
        }
      }
      out.byte(0);
    }
    if (flag & HAS_UNSCORED) {
      // Rare (a version that could not score): written from the map itself.
      const map = p.unscored[unscored++]!;
      const keys = Object.keys(map);
      out.byte(SECOND_BRANCH * 2);
      if (keys.length > 0) {
        out.long(keys.length);
        for (const k of keys) {
          out.string(k);
          out.string(map[k]!);
        }
      }
      out.byte(0);
    } else out.byte(NULL_BRANCH); // absent or null
    ends[r] = out.pos;
  }
  // One exact buffer for the batch: the scratch grew by doubling, and queued values keep it alive.
  const all = Buffer.allocUnsafe(out.pos);
  out.buf.copy(all, 0, 0, out.pos);
  const values = new Array<Buffer | undefined>(p.count);
  for (let r = 0; r < p.count; r++) values[r] = ends[r]! < 0 ? undefined : all.subarray(starts[r]!, ends[r]!);
  return { values };
}
